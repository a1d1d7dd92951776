"""The behaviour added for production, on top of the supplied contract."""

import pytest

from app.app import ACCOUNTS, CUSTOMERS, MAX_BODY_BYTES
from app.app import app as flask_app

ROUTES = [
    "/customers",
    "/customers/111",
    "/customers/111/accounts",
    "/customers/111/accounts/1",
    "/healthz",
]


def test_contract_lists_every_customer_with_id_and_data(client):
    body = client.get("/customers").get_json()
    assert body == [{"id": cid, "data": data} for cid, data in CUSTOMERS.items()]
    assert [c["data"]["name"] for c in body] == ["Deadpool", "Daredevil", "Captain America"]


@pytest.mark.parametrize("cid,count", [("111", 3), ("222", 1), ("333", 1)])
def test_contract_accounts_per_customer(client, cid, count):
    body = client.get(f"/customers/{cid}/accounts").get_json()
    assert len(body) == count
    assert {a["id"] for a in body} == set(ACCOUNTS[cid])


def test_contract_account_fields(client):
    body = client.get("/customers/111/accounts/2").get_json()
    assert body == {"id": "2", "data": {
        "bsb": "060-111", "account_number": "22223333", "type": "m",
        "alias": "Mortgage", "balance": -350000.0}}
    card = client.get("/customers/333/accounts/5").get_json()["data"]
    assert "bsb" not in card and card["balance"] == 3592.22


def test_unknown_customer_message(client):
    response = client.get("/customers/999/accounts")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Customer 999 does not exist"}


def test_unknown_account_message(client):
    response = client.get("/customers/222/accounts/1")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Account 1 for customer 222 does not exist"}


def test_account_of_another_customer_is_not_reachable(client):
    assert client.get("/customers/333/accounts/1").status_code == 404


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_is_json(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_healthz_is_cheap_and_holds_no_customer_data(client):
    response = client.get("/healthz")
    assert response.get_json() == {"status": "ok"}
    text = response.get_data(as_text=True)
    assert not any(c["name"] in text for c in CUSTOMERS.values())


@pytest.mark.parametrize("path", ["/", "/nope", "/customers/", "/customers/111/accounts/1/x",
                                  "/customers/%2e%2e/etc/passwd", "/static/app.py"])
def test_unknown_path_is_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "Not Found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ROUTES)
def test_other_methods_are_json_405_with_allow(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "Method Not Allowed"}
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_head_is_allowed_without_a_body(client):
    response = client.head("/customers")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_data() == b""


def test_oversized_body_is_json_413(client):
    response = client.get("/customers", data="x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "Request Entity Too Large"}


def test_small_body_is_ignored(client):
    assert client.get("/customers", data="x" * 10).status_code == 200


def test_unhandled_error_is_json_500_without_internals(client, monkeypatch, caplog):
    def boom():
        raise RuntimeError("secret internals: /opt/api/db password=hunter2")

    monkeypatch.setitem(flask_app.view_functions, "healthz", boom)
    response = client.get("/healthz")
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert response.get_json() == {"error": "Internal Server Error"}
    text = response.get_data(as_text=True)
    assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text
    # ...but the operator gets the traceback in the log.
    errors = [r for r in caplog.records if r.name == "api" and r.exc_info]
    assert errors and errors[0].exc_info[0] is RuntimeError


def test_no_debug_mode():
    assert not flask_app.debug
    assert flask_app.config["PROPAGATE_EXCEPTIONS"] in (None, False)
