"""The staff API described as OpenAPI 3.1, made from the operations' signatures and docstrings
(admin_cli/ops), so the description cannot drift from what the server does."""

from __future__ import annotations

from typing import Any

from admin_cli.ops import Op

SCHEMAS = {bool: {"type": "boolean"}, int: {"type": "integer"},
           str: {"type": "string"}, list: {"type": "array", "items": {"type": "string"}}}
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string", "description": "What went wrong and what "
                                  "to do instead (the CLI prints it)."},
                        "exit": {"type": "integer", "description": "The CLI's exit code."}}}


def _schema(kind: type) -> dict[str, Any]:
    return SCHEMAS.get(kind) or {"type": "string", "format": "date"}


def _operation(op: Op) -> dict[str, Any]:
    params = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
               "schema": _schema(p.kind) | ({"default": p.default}
                                            if p.default is not None else {})}
              for p in op.params if p.where != "body"]
    body = [p for p in op.params if p.where == "body"]
    summary, _, description = op.doc.partition("\n")
    spec: dict[str, Any] = {
        "operationId": op.name, "summary": summary, "description": op.doc,
        "parameters": params,
        "responses": {
            "200": {"description": "Done.", "content": {
                "application/json": {"schema": {}}} if not op.document else {
                "application/json": {}, "text/plain": {}, "text/html": {}, "text/csv": {},
                "image/png": {}}},
            **{str(code): {"description": what, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
               for code, what in ((400, "Bad input; the message says what to send."),
                                  (401, "No valid token."),
                                  (403, "Not allowed for this user's role or unit."),
                                  (404, "Not found."), (409, "Done already."),
                                  (429, "Too many requests."))}}}
    if body:
        spec["requestBody"] = {"required": any(p.required for p in body), "content": {
            "application/json": {"schema": {
                "type": "object", "required": [p.name for p in body if p.required],
                "properties": {p.name: _schema(p.kind) for p in body}}}}}
    return spec


def document(registry: dict[str, Op]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in registry.values():
        paths.setdefault("/api/v1" + op.path, {})[op.method.lower()] = _operation(op)
    paths["/api/v1/login/oidc"] = {"post": {
        "operationId": "login_oidc", "security": [],
        "summary": "Exchange an ID token from the identity provider for a session token.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["id_token"],
            "properties": {"id_token": {"type": "string"}}}}}},
        "responses": {"200": {"description": "A session token (12 hours)."},
                      "401": {"description": "The ID token is not valid."},
                      "403": {"description": "Not a tala user."}}}}
    paths["/api/v1/login"] = {"get": {
        "operationId": "login_methods", "security": [],
        "summary": "How to sign in here: tokens, and the OIDC issuer and client id.",
        "responses": {"200": {"description": "The methods."}}}}
    return {"openapi": "3.1.0",
            "info": {"title": "tala staff API", "version": "1",
                     "description": "Everything staff do in tala, as the CLI does it. Roles "
                     "and units are checked per request; every request is audited."},
            "paths": paths,
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                           "schemas": {"Error": ERROR}},
            "security": [{"bearer": []}]}
