"""Shared fixtures for the pytest suite of the API (the app runs in-process)."""


import pytest

from app import app as app_module


@pytest.fixture
def app():
    return app_module.app


@pytest.fixture
def client(app):
    return app.test_client()
