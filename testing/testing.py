#!/usr/bin/env python3
"""The supplied unit tests: the API contract, run with `python testing/testing.py`."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from app.app import app  # noqa: E402


class CustomerAccountApiTest(unittest.TestCase):
    def setUp(self):
        self.client = app.test_client()

    def get_json(self, path):
        response = self.client.get(path)
        return response, json.loads(response.get_data(as_text=True))

    def test_list_customers(self):
        response, body = self.get_json("/customers")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(body), 3)

    def test_get_customer(self):
        response, body = self.get_json("/customers/111")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(body)

    def test_get_unknown_customer(self):
        response = self.client.get("/customers/foo")
        self.assertEqual(response.status_code, 404)

    def test_list_customer_accounts(self):
        response, body = self.get_json("/customers/111/accounts")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(body), 3)

    def test_list_accounts_of_unknown_customer(self):
        response = self.client.get("/customers/foo/accounts")
        self.assertEqual(response.status_code, 404)

    def test_get_customer_account(self):
        response, body = self.get_json("/customers/111/accounts/1")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(body["id"], "1")
        self.assertEqual(body["data"]["account_number"], "11112222")

    def test_get_unknown_account(self):
        response = self.client.get("/customers/111/accounts/7")
        self.assertEqual(response.status_code, 404)

    def test_get_account_of_unknown_customer(self):
        response = self.client.get("/customers/foo/accounts/7")
        self.assertEqual(response.status_code, 404)


if __name__ == "__main__":
    unittest.main()
