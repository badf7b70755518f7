"""The OpenAPI 3.1 document: every route in it, built from the models that validate."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

from app.web.api import schemas
from app.web.api.openapi import REF


@pytest.fixture
def document(app):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every API route the app serves, in OpenAPI's path syntax."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint == "api.not_found":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        routes |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_it_documents_exactly_the_routes_the_app_serves(app, document):
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert document["openapi"] == "3.1.0"
    assert documented == api_routes(app)


def test_it_describes_requests_with_the_models_that_validate_them(document):
    components = document["components"]["schemas"]
    for model in (schemas.EventIn, schemas.ContactIn, schemas.ConsentIn, schemas.PublishIn):
        generated = model.model_json_schema(ref_template=REF)
        generated.pop("$defs", None)
        assert components[model.__name__] == generated
    batch = document["paths"]["/events/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"] == {"$ref": "#/components/schemas/BatchIn"}
    assert components["BatchIn"]["properties"]["events"]["maxItems"] == schemas.MAX_BATCH


def test_it_requires_a_key_everywhere_but_on_itself(document):
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/openapi.json":
                assert operation["security"] == []
            else:
                assert "401" in operation["responses"], (method, path)


def test_it_holds_only_valid_json_schemas(document):
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_it_documents_every_error_answer_in_the_error_format(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in ("ErrorOut", "DefinitionErrorOut"), (
                        method,
                        path,
                    )
