"""The admin API's OpenAPI document, as a running gateway serves it: a
valid OpenAPI 3.1 document, readable without the admin token, whose schemas
the gateway's real admin answers satisfy."""

from __future__ import annotations

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from harness import Gateway

DOCUMENT_PATH = "/admin/openapi.json"


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict:
    # No admin token: the document is served without one.
    response = httpx.get(f"http://127.0.0.1:{gateway.admin_port}{DOCUMENT_PATH}", timeout=10.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def assert_matches(document: dict, schema_name: str, value: object) -> None:
    """`value` satisfies the document's schema `schema_name`, formats
    (date-time, date) included."""
    root = {"components": document["components"], "$ref": f"#/components/schemas/{schema_name}"}
    validator = OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(value)]
    assert not errors, f"{schema_name}: {errors}\n{value}"


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_the_admin_routes_still_need_the_token(gateway: Gateway, document: dict) -> None:
    response = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/admin/v1/keys", timeout=10.0)
    assert response.status_code == 401
    assert_matches(document, "Error", response.json())


def test_real_admin_answers_match_their_schemas(gateway: Gateway, document: dict, compat_account: dict) -> None:
    admin = gateway.admin

    created = admin.post("/admin/v1/keys", json={"name": "openapi-shapes", "rpm": 600, "monthly_budget_usd": 5})
    assert created.status_code == 201, created.text
    assert_matches(document, "CreatedKey", created.json())
    key_id = created.json()["id"]
    profile = admin.post(
        "/admin/v1/profiles", json={"name": "openapi-shapes", "description": "schema check", "strategy": "priority"}
    )
    assert profile.status_code == 201, profile.text
    assert_matches(document, "Profile", profile.json())

    reads = {
        "/admin/v1/keys": "KeyList",
        f"/admin/v1/keys/{key_id}": "Key",
        "/admin/v1/accounts": "AccountList",
        f"/admin/v1/accounts/{compat_account['id']}": "Account",
        f"/admin/v1/accounts/{compat_account['id']}/usage": "UsageReport",
        "/admin/v1/routes": "RouteList",
        "/admin/v1/profiles": "ProfileList",
        "/admin/v1/profiles/openapi-shapes": "Profile",
        "/admin/v1/profiles/default/stats": "ProfileStats",
        "/admin/v1/usage?group_by=account&bucket=day": "UsageReport",
        "/admin/v1/audit?limit=5": "AuditList",
    }
    for path, schema_name in reads.items():
        response = admin.get(path)
        assert response.status_code == 200, f"{path}: {response.text}"
        assert_matches(document, schema_name, response.json())

    changed = admin.patch(f"/admin/v1/keys/{key_id}", json={"rpm": None, "enabled": False})
    assert changed.status_code == 200, changed.text
    assert_matches(document, "Key", changed.json())

    deleted = admin.delete(f"/admin/v1/keys/{key_id}")
    assert deleted.status_code == 200, deleted.text
    assert_matches(document, "Deleted", deleted.json())

    missing = admin.get(f"/admin/v1/keys/{key_id}")
    assert missing.status_code == 404
    assert_matches(document, "Error", missing.json())
