"""The OpenAPI 3.1 document, built from the pydantic models that validate requests
and shape responses (and, for funnel definitions, from the JSON Schema the engine
validates them with), so it always describes what the server really does.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits: the
models' schemas go into `components.schemas` unchanged.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.wrappers import Response

from app.web.api import bp
from app.web.api import schemas as s

REF = "#/components/schemas/{model}"
FUNNEL_SCHEMA = Path(__file__).resolve().parents[2] / "engine" / "funnel.schema.json"
JSON = "application/json"


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation_id: str
    summary: str
    responses: dict[int, type[BaseModel]]
    body: type[BaseModel] | str | None = None  # a model, or "funnel" for a definition
    body_required: bool = True
    params: tuple[dict[str, Any], ...] = ()
    description: str = ""
    tags: tuple[str, ...] = field(default=())


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


EMAIL = _path_param(
    "email",
    {"type": "string", "format": "email", "minLength": 1, "maxLength": 320},
    "The contact's email address.",
)
KEY = _path_param(
    "key", {"type": "string", "pattern": s.SLUG, "maxLength": 64}, "The funnel's key."
)

OPERATIONS = (
    Op(
        "put",
        "/contacts/{email}",
        "upsertContact",
        "Create or update a contact",
        {200: s.ContactOut, 201: s.ContactOut, 422: s.ErrorOut},
        s.ContactIn,
        params=(EMAIL,),
        tags=("contacts",),
        description=(
            "Merges `attributes` into the contact's; a null value deletes that attribute. "
            "201 when created."
        ),
    ),
    Op(
        "get",
        "/contacts/{email}",
        "getContact",
        "A contact with its consent and enrollments",
        {200: s.ContactOut, 404: s.ErrorOut, 422: s.ErrorOut},
        params=(EMAIL,),
        tags=("contacts",),
    ),
    Op(
        "post",
        "/contacts/{email}/consent",
        "setConsent",
        "Change a contact's consent",
        {200: s.ConsentOut, 409: s.ErrorOut, 422: s.ErrorOut, 503: s.ErrorOut},
        s.ConsentIn,
        params=(EMAIL,),
        tags=("contacts",),
        description=(
            "Written to the consent ledger with source `api`. Topics set to true go through "
            "double opt-in where configured (they become `pending` and a confirmation email is "
            "sent). Creates an unknown contact."
        ),
    ),
    Op(
        "post",
        "/events",
        "postEvent",
        "Record one event",
        {202: s.EventOut, 422: s.ErrorOut},
        s.EventIn,
        tags=("events",),
        description="Accepted (202) means stored. An unknown email creates the contact.",
    ),
    Op(
        "post",
        "/events/batch",
        "postEventBatch",
        "Record up to 1,000 events",
        {202: s.BatchOut, 422: s.ErrorOut},
        s.BatchIn,
        tags=("events",),
        description=(
            "Every valid item is stored even if others are not; `results` says, per index, "
            "`accepted`, `duplicate` (its id was seen before) or `error` (with the error). "
            "More than 1,000 events is a 422."
        ),
    ),
    Op("get", "/funnels", "listFunnels", "Every funnel", {200: s.FunnelList}, tags=("funnels",)),
    Op(
        "get",
        "/funnels/{key}",
        "getFunnel",
        "A funnel, its versions and its live definition",
        {200: s.FunnelOut, 404: s.ErrorOut},
        params=(KEY,),
        tags=("funnels",),
    ),
    Op(
        "put",
        "/funnels/{key}",
        "putFunnel",
        "Save a new version of a funnel (a draft until published)",
        {200: s.SavedOut, 201: s.SavedOut, 422: s.DefinitionErrorOut},
        "funnel",
        params=(KEY,),
        tags=("funnels",),
        description=(
            "The body is the definition in YAML or JSON. 201 when a new version was made, 200 "
            "when the newest version already had this definition. Problems name their line, "
            "field and stage."
        ),
    ),
    Op(
        "post",
        "/funnels/{key}/validate",
        "validateFunnel",
        "Check a definition without saving it",
        {200: s.ValidateOut, 422: s.DefinitionErrorOut},
        "funnel",
        params=(KEY,),
        tags=("funnels",),
    ),
    Op(
        "post",
        "/funnels/{key}/publish",
        "publishFunnel",
        "Make a version live (by default the newest)",
        {200: s.PublishOut, 404: s.ErrorOut, 409: s.ErrorOut, 422: s.ErrorOut},
        s.PublishIn,
        body_required=False,
        params=(KEY,),
        tags=("funnels",),
        description=(
            "409 when it would strand contacts in stages the version removes without saying "
            "where they go."
        ),
    ),
    Op(
        "get",
        "/funnels/{key}/stats",
        "funnelStats",
        "Contacts per stage, entered, converted, exited, sends; and the same over time",
        {200: s.StatsOut, 404: s.ErrorOut, 422: s.ErrorOut},
        params=(KEY,),
        tags=("funnels",),
    ),
    Op(
        "get",
        "/messages",
        "listMessages",
        "Messages, oldest first, filtered and paged",
        {200: s.MessageList, 422: s.ErrorOut},
        tags=("messages",),
    ),
)


def _model_schemas() -> dict[str, Any]:
    """Component schemas of every model an operation uses, in the mode it is used in."""
    pairs: set[tuple[type[BaseModel], JsonSchemaMode]] = {(s.ErrorOut, "serialization")}
    for op in OPERATIONS:
        pairs.update((model, "serialization") for model in op.responses.values())
        if isinstance(op.body, type):
            pairs.add((op.body, "validation"))
    pairs.add((s.MessagesQuery, "validation"))
    ordered = sorted(pairs, key=lambda p: (p[0].__name__, p[1]))
    _, defs = models_json_schema(ordered, ref_template=REF)
    return dict(defs.get("$defs", {}))


def _funnel_schemas() -> dict[str, Any]:
    """funnel.schema.json as components: its $defs become `Funnel_<name>`."""
    raw = json.loads(FUNNEL_SCHEMA.read_text())
    defs = raw.pop("$defs", {})
    for key in ("$schema", "$id", "$comment"):
        raw.pop(key, None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    REF.format(model="Funnel_" + v.removeprefix("#/$defs/"))
                    if k == "$ref"
                    else rewrite(v)
                )
                for k, v in node.items()
                if k != "x-messages"  # the engine's wording for its errors, not part of the shape
            }
        return [rewrite(v) for v in node] if isinstance(node, list) else node

    out = {"FunnelDefinition": rewrite(raw)}
    out.update({f"Funnel_{name}": rewrite(schema) for name, schema in defs.items()})
    return out


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


QUERIES = {"listMessages": s.MessagesQuery, "funnelStats": s.StatsQuery}


def _query_params(operation_id: str) -> list[dict[str, Any]]:
    """An operation's query string, from its query model's own schema."""
    model = QUERIES.get(operation_id)
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": _drop_titles(prop),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema["properties"].items()
    ]


def _drop_titles(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("title", "description", "default")}


def _request_body(op: Op) -> dict[str, Any] | None:
    if op.body is None:
        return None
    if op.body == "funnel":
        content: dict[str, Any] = {"application/yaml": {"schema": {}}, JSON: {"schema": {}}}
        # Validation is the point of /validate: any text or JSON is a fair question there.
        if op.operation_id == "putFunnel":
            content[JSON]["schema"] = {"$ref": REF.format(model="FunnelDefinition")}
            content["application/yaml"]["schema"] = {"type": "string"}
        return {
            "required": True,
            "content": content,
            "description": "A funnel definition, YAML or JSON.",
        }
    assert isinstance(op.body, type)
    return {"required": op.body_required, "content": {JSON: {"schema": _ref(op.body)}}}


def _responses(op: Op) -> dict[str, Any]:
    declared: dict[int, type[BaseModel]] = {401: s.ErrorOut, **op.responses}
    if op.body is not None:
        declared.setdefault(400, s.ErrorOut)  # malformed JSON, or not UTF-8
        declared.setdefault(413, s.ErrorOut)
    if op.params:
        declared.setdefault(404, s.ErrorOut)  # a path the parameter cannot be part of
    return {
        str(code): {
            "description": _STATUS_WORDS.get(code, "Success"),
            "content": {JSON: {"schema": _ref(model)}},
        }
        for code, model in sorted(declared.items())
    }


_STATUS_WORDS = {
    200: "OK",
    201: "Created",
    202: "Accepted: stored",
    400: "Malformed body",
    401: "Missing or wrong API key",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    422: "Invalid field (the error names it)",
    503: "A needed service (SMTP) is unavailable; nothing was changed",
}


def _operation(op: Op) -> dict[str, Any]:
    params = [*op.params, *_query_params(op.operation_id)]
    operation: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": _responses(op),
    }
    if op.description:
        operation["description"] = op.description
    if params:
        operation["parameters"] = params
    body = _request_body(op)
    if body is not None:
        operation["requestBody"] = body
    return operation


@cache
def document() -> dict[str, Any]:
    """The whole document (built once: it depends on code only)."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "tags": ["meta"],
            "responses": {
                "200": {"description": "OK", "content": {JSON: {"schema": {"type": "object"}}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Nurture API",
            "version": "1",
            "description": (
                "Contacts, consent, events, funnels and messages. Every error is "
                '`{"error": {"code", "message", "field"}}` with a 4xx status. '
                "Times are ISO 8601 with offset."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key."}
            },
            "schemas": {**_model_schemas(), **_funnel_schemas()},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(copy.deepcopy(document())), mimetype="application/json")
