//! The OpenAPI 3 document served at `/openapi.json`, written out by hand (no code generation,
//! nothing downloaded at build time). A test checks that every path it lists is routed.

use serde_json::{Value, json};

use crate::config::Settings;

fn param(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
}

fn time_schema() -> Value {
    json!({ "type": "string", "example": "2024-05-01T12:00:00Z" })
}

fn level_schema() -> Value {
    json!({ "type": "string", "enum": ["trace", "debug", "info", "warning", "error", "critical"] })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn responses(ok: Value, extra: &[(&str, &str)]) -> Value {
    let mut r = json!({
        "200": ok,
        "400": error_response("a parameter is invalid; `parameter` names it"),
        "401": error_response("the bearer token is missing or wrong"),
        "503": error_response("the store is unreachable or not running"),
        "504": error_response("the request took longer than `request_timeout_ms`"),
    });
    for (code, what) in extra {
        r[*code] = error_response(what);
    }
    r
}

fn page_response() -> Value {
    json!({ "description": "a page of records, newest first", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Page" } } } })
}

fn json_ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// The document for these settings (page-size and body limits are stated in it).
pub fn document(settings: &Settings) -> Value {
    let max = settings.max_page_size.get();
    let limit = param(
        "limit",
        &format!(
            "records per page (default {}, at most {max}: larger gets 413)",
            settings.default_page_size
        ),
        json!({ "type": "integer", "minimum": 1, "maximum": max }),
        false,
    );
    let cursor = param(
        "cursor",
        "the `next` of the previous page",
        json!({ "type": "string", "pattern": "^-?[0-9]+:.*$" }),
        false,
    );
    let filters = |required: &[&str]| -> Vec<Value> {
        let r = |n: &str| required.contains(&n);
        vec![
            param(
                "id",
                "one of these ids (repeatable)",
                json!({ "type": "string" }),
                false,
            ),
            param(
                "from",
                "from this time, inclusive: RFC 3339, a date (UTC) or nanoseconds",
                time_schema(),
                r("from"),
            ),
            param("to", "before this time, exclusive", time_schema(), r("to")),
            param(
                "level",
                "exactly this level (a name or 0-5)",
                level_schema(),
                r("level"),
            ),
            param(
                "min_level",
                "this level or more severe",
                level_schema(),
                false,
            ),
            param(
                "project",
                "one of these projects (repeatable)",
                json!({ "type": "string" }),
                r("project"),
            ),
            param(
                "module",
                "one of these modules (repeatable)",
                json!({ "type": "string" }),
                r("module"),
            ),
            param(
                "text",
                "case-insensitive substring of the message",
                json!({ "type": "string" }),
                false,
            ),
        ]
    };
    let pick = |names: &[&str], required: &[&str], paging: bool| -> Value {
        let mut v: Vec<Value> = filters(required)
            .into_iter()
            .filter(|p| names.contains(&p["name"].as_str().unwrap_or("")))
            .collect();
        if paging {
            v.push(limit.clone());
            v.push(cursor.clone());
        }
        Value::Array(v)
    };
    let all = [
        "id",
        "from",
        "to",
        "level",
        "min_level",
        "project",
        "module",
        "text",
    ];
    let id_param = json!([param(
        "id",
        "the record's id",
        json!({ "type": "string" }),
        true
    )]);
    let by = |key: &str, summary: &str| -> Value {
        json!({ "get": {
            "summary": summary, "operationId": format!("by_{key}"), "tags": ["logs"],
            "parameters": pick(&[key], &[key], true),
            "responses": responses(page_response(), &[("413", "`limit` is larger than the page-size limit")]),
        }})
    };
    let filter_body = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "ids": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "from": { "oneOf": [ { "type": "string" }, { "type": "integer" } ] },
            "to": { "oneOf": [ { "type": "string" }, { "type": "integer" } ] },
            "level": { "type": "string" }, "min_level": { "type": "string" },
            "project": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" }, "minItems": 1 } ] },
            "module": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" }, "minItems": 1 } ] },
            "text": { "type": "string" },
            "all": { "type": "boolean", "description": "must be true to delete with an empty filter" }
        }
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "logrelay HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Read, change and delete stored logs; follow new ones live. With a token configured every route but /docs needs `Authorization: Bearer <token>`; without one, POST and DELETE are refused (403). Bodies up to {} bytes.",
                settings.max_body_bytes
            ),
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/log": {
                "get": {
                    "summary": "one record by id", "operationId": "get_log", "tags": ["log"],
                    "parameters": id_param,
                    "responses": responses(json_ok("the record", json!({ "$ref": "#/components/schemas/Record" })), &[("404", "no record with this id")]),
                },
                "post": {
                    "summary": "change a record: `id` and the fields to change", "operationId": "update_log", "tags": ["log"],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Update" } } } },
                    "responses": responses(json_ok("the changed record", json!({ "type": "object", "properties": { "updated": { "type": "integer" }, "record": { "$ref": "#/components/schemas/Record" } } })),
                        &[("403", "no token is configured: changes are disabled"), ("404", "no record with this id"), ("413", "the body is too large")]),
                },
                "delete": {
                    "summary": "delete a record by id", "operationId": "delete_log", "tags": ["log"],
                    "parameters": id_param,
                    "responses": responses(json_ok("how many rows were deleted", json!({ "$ref": "#/components/schemas/Deleted" })),
                        &[("403", "no token is configured: deleting is disabled"), ("404", "no record with this id")]),
                },
            },
            "/log/by_count": { "get": {
                "summary": "the newest `count` records", "operationId": "by_count", "tags": ["logs"],
                "parameters": [
                    param("count", &format!("how many (1 to {max})"), json!({ "type": "integer", "minimum": 1, "maximum": max }), true),
                    cursor.clone(),
                ],
                "responses": responses(page_response(), &[("413", "`count` is larger than the page-size limit")]),
            }},
            "/log/by_dates": { "get": {
                "summary": "records between two times", "operationId": "by_dates", "tags": ["logs"],
                "parameters": pick(&["from", "to"], &["from", "to"], true),
                "responses": responses(page_response(), &[("413", "`limit` is larger than the page-size limit")]),
            }},
            "/log/by_level": by("level", "records of exactly one level"),
            "/log/by_module": by("module", "records of one module"),
            "/log/by_project": by("project", "records of one project"),
            "/logs": { "get": {
                "summary": "records matching every filter given, newest first, with a `next` cursor", "operationId": "logs", "tags": ["logs"],
                "parameters": pick(&all, &[], true),
                "responses": responses(page_response(), &[("413", "`limit` is larger than the page-size limit")]),
            }},
            "/logs/stats": { "get": {
                "summary": "counts by level, project and module of the matching records", "operationId": "stats", "tags": ["logs"],
                "parameters": pick(&all, &[], false),
                "responses": responses(json_ok("counts", json!({ "type": "object" })), &[]),
            }},
            "/logs/delete": { "post": {
                "summary": "delete every record matching the filter in the body", "operationId": "delete_by_filter", "tags": ["logs"],
                "requestBody": { "required": true, "content": { "application/json": { "schema": filter_body } } },
                "responses": responses(json_ok("how many rows were deleted", json!({ "$ref": "#/components/schemas/Deleted" })),
                    &[("403", "no token is configured: deleting is disabled"), ("413", "the body is too large")]),
            }},
            "/logs/stream": { "get": {
                "summary": "live tail (server-sent events): `log` events with a record, `skipped` events when this client fell behind", "operationId": "stream", "tags": ["logs"],
                "parameters": pick(&all, &[], false),
                "responses": responses(json!({ "description": "an event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } }), &[]),
            }},
            "/openapi.json": { "get": {
                "summary": "this document", "operationId": "openapi", "tags": ["meta"],
                "responses": { "200": json_ok("OpenAPI 3", json!({ "type": "object" })), "401": error_response("the bearer token is missing or wrong") },
            }},
            "/docs": { "get": {
                "summary": "interactive documentation (needs no token: it holds no data)", "operationId": "docs", "tags": ["meta"], "security": [],
                "responses": { "200": { "description": "an HTML page", "content": { "text/html": { "schema": { "type": "string" } } } } },
            }},
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Record": { "type": "object", "properties": {
                    "id": { "type": "string" }, "timestamp": { "type": "string", "format": "date-time" },
                    "timestamp_ns": { "type": "integer" }, "level": { "type": "string" },
                    "project": { "type": "string" }, "module": { "type": "string" },
                    "message": { "type": "string" }, "attributes": { "type": "object" }
                }},
                "Page": { "type": "object", "properties": {
                    "records": { "type": "array", "items": { "$ref": "#/components/schemas/Record" } },
                    "next": { "type": "string", "nullable": true, "description": "pass as `cursor` for the next page; null on the last" }
                }},
                "Deleted": { "type": "object", "properties": { "deleted": { "type": "integer" } } },
                "Update": { "type": "object", "required": ["id"], "additionalProperties": false, "properties": {
                    "id": { "type": "string" }, "level": level_schema(), "message": { "type": "string" },
                    "project": { "type": "string" }, "module": { "type": "string" },
                    "attributes": { "type": "object", "description": "replaces the attributes" },
                    "merge_attributes": { "type": "object", "description": "merged into the attributes" }
                }},
                "Error": { "type": "object", "required": ["error"], "properties": {
                    "error": { "type": "string" }, "parameter": { "type": "string", "description": "the parameter or body field at fault" }
                }}
            }
        }
    })
}
