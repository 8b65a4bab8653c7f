//! The OpenAPI 3.1 description of `/v1`, served at `/openapi.json`. A test checks that it
//! lists exactly the routes [`super::v1::routes`] serves; schemathesis checks that the daemon
//! answers as it says (tests/openapi_conformance.rs).

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn outlet_response() -> Value {
    json!({
        "description": "The outlet after the call",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outlet"}}}
    })
}

/// The document for a daemon whose reads are open (`auth.open_reads`) or not: with open reads
/// the GET operations say that credentials are optional.
pub fn document(open_reads: bool) -> Value {
    let read_security = if open_reads {
        json!([{}, {"bearer": []}, {"basic": []}])
    } else {
        json!([{"bearer": []}, {"basic": []}])
    };
    let id_param = json!({
        "name": "id", "in": "path", "required": true,
        "description": "Outlet id as configured",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "PiFoundry powerd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Power control for the worker Pis. States are the commanded states: no backend can read back whether a Pi really has power. Mutations always need a token (Bearer, or Basic with the token as password)."
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/v1/outlets": {
                "get": {
                    "operationId": "listOutlets",
                    "security": read_security,
                    "summary": "All outlets in configuration order",
                    "responses": {
                        "200": {
                            "description": "The outlets",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["outlets"],
                                "properties": {"outlets": {"type": "array", "items": {"$ref": "#/components/schemas/Outlet"}}}
                            }}}
                        },
                        "401": error_response("Missing or invalid credentials")
                    }
                }
            },
            "/v1/outlets/{id}": {
                "get": {
                    "operationId": "getOutlet",
                    "security": read_security,
                    "summary": "One outlet",
                    "parameters": [id_param],
                    "responses": {
                        "200": {"description": "The outlet", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outlet"}}}},
                        "401": error_response("Missing or invalid credentials"),
                        "404": error_response("No such outlet (code outlet_not_found)")
                    }
                }
            },
            "/v1/outlets/{id}/power": {
                "put": {
                    "operationId": "setPower",
                    "summary": "Switch an outlet on or off; asking for the current state changes nothing",
                    "description": "Power-ons wait for the outlet's min_off and the global stagger.",
                    "parameters": [id_param],
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["state"], "additionalProperties": false,
                            "properties": {"state": {"$ref": "#/components/schemas/PowerState"}}
                        }}}
                    },
                    "responses": {
                        "200": outlet_response(),
                        "400": error_response("Bad JSON body (code invalid_body)"),
                        "401": error_response("Missing or invalid credentials"),
                        "404": error_response("No such outlet (code outlet_not_found)"),
                        "500": error_response("Switched, but the state file could not be written (code state_not_saved)"),
                        "502": error_response("The backend failed (code backend_failed)")
                    }
                }
            },
            "/v1/outlets/{id}/cycle": {
                "post": {
                    "operationId": "cycleOutlet",
                    "summary": "Power-cycle: off, wait min_off, on (an outlet that is off is just switched on)",
                    "parameters": [id_param],
                    "responses": {
                        "200": outlet_response(),
                        "401": error_response("Missing or invalid credentials"),
                        "404": error_response("No such outlet (code outlet_not_found)"),
                        "500": error_response("Switched, but the state file could not be written (code state_not_saved)"),
                        "502": error_response("The backend failed (code backend_failed)")
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic", "description": "Any user name; the token is the password"}
            },
            "schemas": {
                "PowerState": {"type": "string", "enum": ["on", "off"]},
                "Outlet": {
                    "type": "object",
                    "required": ["id", "backend", "state", "changed_at", "changed_by", "min_off_ms"],
                    "properties": {
                        "id": {"type": "string"},
                        "description": {"type": "string"},
                        "backend": {"type": "string", "enum": ["gpio", "command", "sim"]},
                        "state": {"$ref": "#/components/schemas/PowerState"},
                        "changed_at": {"type": ["string", "null"], "format": "date-time"},
                        "changed_by": {"type": ["string", "null"]},
                        "min_off_ms": {"type": "integer", "minimum": 0}
                    }
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": [
                                "unauthorized", "invalid_body", "outlet_not_found", "not_found",
                                "method_not_allowed", "backend_failed", "state_not_saved"
                            ]},
                            "message": {"type": "string"}
                        }
                    }}
                }
            }
        }
    });
    let (paths, schemas) = super::openapi_prov::paths(&read_security);
    doc["paths"].as_object_mut().expect("paths").extend(paths);
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas")
        .extend(schemas);
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
        ["enum"]
        .as_array_mut()
        .expect("codes");
    codes.extend(super::openapi_prov::CODES.iter().map(|c| json!(c)));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by schemathesis: with open reads the GETs answered 200 without credentials while
    /// the document said every operation needs them.
    #[test]
    fn open_reads_make_credentials_optional_for_reads_only() {
        for open in [false, true] {
            let doc = document(open);
            for (path, method) in [("/v1/outlets", "get"), ("/v1/outlets/{id}", "get")] {
                let security = doc["paths"][path][method]["security"].as_array().unwrap();
                assert_eq!(security.contains(&json!({})), open, "{method} {path}");
            }
            for (path, method) in [
                ("/v1/outlets/{id}/power", "put"),
                ("/v1/outlets/{id}/cycle", "post"),
            ] {
                assert!(doc["paths"][path][method].get("security").is_none());
                assert!(!doc["security"].as_array().unwrap().contains(&json!({})));
            }
        }
    }
}
