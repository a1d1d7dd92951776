"""Shared fixtures for the pytest suite of the API (the app runs in-process)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app import app as app_module  # noqa: E402


@pytest.fixture
def app():
    return app_module.app


@pytest.fixture
def client(app):
    return app.test_client()
