#!/usr/bin/env python3
"""SuperMega Bank Customer Account API.

A read-only JSON API over a small in-memory data set. The routes and their
responses are the contract the bank's web team was given; everything else in
this module (JSON errors, /healthz, response headers, logging) exists so the
same code can run in production behind gunicorn and nginx.

Run as supplied:      python app/app.py          (Flask's server, :5000, debug off)
Run in production:    gunicorn app.app:app       (see ansible/roles/api)
"""

import logging
import sys

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

ACCOUNTS = {
    "111": {
        "1": {"bsb": "060-000", "account_number": "11112222", "type": "tx",
              "alias": "Transaction Account", "balance": 1000.00},
        "2": {"bsb": "060-111", "account_number": "22223333", "type": "m",
              "alias": "Mortgage", "balance": -350000.00},
        "3": {"account_number": "4532070810616690", "type": "cc",
              "alias": "Credit Card", "balance": 500.00},
    },
    "222": {
        "4": {"bsb": "060-222", "account_number": "33334444", "type": "tx",
              "alias": "Transaction Account", "balance": 25.00},
    },
    "333": {
        "5": {"account_number": "5274393383004246", "type": "cc",
              "alias": "Credit Card", "balance": 3592.22},
    },
}

CUSTOMERS = {
    "111": {"name": "Deadpool"},
    "222": {"name": "Daredevil"},
    "333": {"name": "Captain America"},
}

# A read-only API takes no request bodies worth speaking of; nginx enforces a
# limit at the edge too, this one protects the app when reached directly.
MAX_BODY_BYTES = 1024

app = Flask(__name__)
app.config.update(
    MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    # OPTIONS is not part of the contract: answer it like any other
    # unsupported method (405 JSON with Allow) instead of an HTML 200.
    PROVIDE_AUTOMATIC_OPTIONS=False,
)

log = logging.getLogger("api")


def _item(key, data):
    return {"id": key, "data": data}


def _not_found(message):
    return jsonify({"error": message}), 404


def _no_customer(customer_id):
    return _not_found(f"Customer {customer_id} does not exist")


@app.get("/customers")
def list_customers():
    return jsonify([_item(cid, data) for cid, data in CUSTOMERS.items()])


@app.get("/customers/<customer_id>")
def get_customer(customer_id):
    if customer_id not in CUSTOMERS:
        return _no_customer(customer_id)
    return jsonify(_item(customer_id, CUSTOMERS[customer_id]))


@app.get("/customers/<customer_id>/accounts")
def list_customer_accounts(customer_id):
    if customer_id not in CUSTOMERS:
        return _no_customer(customer_id)
    accounts = ACCOUNTS.get(customer_id, {})
    return jsonify([_item(aid, data) for aid, data in accounts.items()])


@app.get("/customers/<customer_id>/accounts/<account_id>")
def get_customer_account(customer_id, account_id):
    if customer_id not in CUSTOMERS:
        return _no_customer(customer_id)
    accounts = ACCOUNTS.get(customer_id, {})
    if account_id not in accounts:
        return _not_found(
            f"Account {account_id} for customer {customer_id} does not exist")
    return jsonify(_item(account_id, accounts[account_id]))


@app.get("/healthz")
def healthz():
    """Liveness for load balancers: no data access, no customer data."""
    return jsonify({"status": "ok"})


@app.before_request
def refuse_large_bodies():
    """No route reads a body, so Werkzeug's own limit would never trigger."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()


@app.errorhandler(HTTPException)
def http_error(exc):
    """Every HTTP error (404, 405, 413, ...) as JSON, keeping its headers (Allow)."""
    response = exc.get_response()
    response.set_data(app.json.dumps({"error": exc.name}))
    response.mimetype = "application/json"
    return response


@app.errorhandler(Exception)
def unhandled_error(exc):
    """Log the traceback server-side; tell the client nothing about internals."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return http_error(InternalServerError())


@app.after_request
def response_headers(response):
    # Customer data must not be cached by browsers or intermediaries.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _configure_logging():
    """Log to stderr; under gunicorn, share its handlers and level."""
    gunicorn_error = logging.getLogger("gunicorn.error")
    if gunicorn_error.handlers:
        log.handlers = gunicorn_error.handlers
        log.setLevel(gunicorn_error.level)
    elif not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_configure_logging()

if __name__ == "__main__":
    # As supplied: all interfaces, port 5000. Production uses gunicorn, not this.
    app.run(host="0.0.0.0", port=5000, debug=False)  # noqa: S104
