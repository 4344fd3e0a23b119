"""The OpenAPI 3.1 document of the ``/v1`` JSON API, written by hand."""

from __future__ import annotations

from typing import Any

from kdiag._version import __version__
from kdiag.errors import DryRunOperation, KdiagError

__all__ = ("openapi_document",)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _described(cls: type[KdiagError]) -> str:
    """``Code (the first line of the class's docstring)``."""
    return f"{cls.code} ({(cls.__doc__ or '').strip().splitlines()[0].rstrip('.')})"


def _errors() -> dict[str, Any]:
    """One response per HTTP status the service answers with, each code with the first line
    of its class's docstring (from the error tree, so the document cannot miss a code); 412
    is documented per operation."""
    by_status: dict[int, list[str]] = {}
    for cls in KdiagError.tree():
        if cls.http_status is not None and cls.http_status != DryRunOperation.http_status:
            by_status.setdefault(cls.http_status, []).append(_described(cls))
    return {str(status): _error("; ".join(codes)) for status, codes in sorted(by_status.items())}


_ERRORS = _errors()


def openapi_document() -> dict[str, Any]:
    """The document served at ``/v1/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kdiag service",
            "version": __version__,
            "summary": "Send diagnostic interrupts (NMIs) under IAM policies, with an audit log.",
            "description": (
                "Every operation except this document needs an AWS Signature Version 4 "
                "signature for service `ec2` and a region the server serves (header form or "
                "presigned query form). The same credentials and policies work with the "
                "EC2-compatible endpoint at `/` (`aws ec2 send-diagnostic-interrupt`)."
            ),
        },
        "security": [{"sigv4": []}],
        "paths": {
            "/v1/instances": {
                "get": {
                    "operationId": "listInstances",
                    "summary": "The caller's instances in the region (ec2:DescribeInstances).",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "description": "instance ids; unknown ones are an error",
                        },
                        {
                            "name": "filter",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "description": (
                                "`name=value[,value]`; names: instance-id, instance-state-name, "
                                "availability-zone, architecture, tag:<key>, tag-key, tag-value"
                            ),
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the instances",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["Instances", "RequestId"],
                                        "properties": {
                                            "Instances": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Instance"},
                                            },
                                            "RequestId": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/instances/{instance_id}/diagnostic-interrupt": {
                "post": {
                    "operationId": "sendDiagnosticInterrupt",
                    "summary": "Send a diagnostic interrupt (ec2:SendDiagnosticInterrupt).",
                    "parameters": [
                        {
                            "name": "instance_id",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": "^i-[0-9a-f]{8}([0-9a-f]{9})?$",
                            },
                        },
                        {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"DryRun": {"type": "boolean"}},
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the backend accepted the interrupt",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": [
                                            "InstanceId",
                                            "Outcome",
                                            "Return",
                                            "RequestId",
                                        ],
                                        "properties": {
                                            "InstanceId": {"type": "string"},
                                            "Outcome": {"const": "sent"},
                                            "Return": {"const": True},
                                            "RequestId": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "412": _error(_described(DryRunOperation)),
                        **_ERRORS,
                    },
                }
            },
            "/v1/audit": {
                "get": {
                    "operationId": "listAuditEvents",
                    "summary": "The audit log, oldest first (cloudtrail:LookupEvents on *).",
                    "parameters": [
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "audit rows",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["Events", "RequestId"],
                                        "properties": {
                                            "Events": {
                                                "type": "array",
                                                "items": {
                                                    "$ref": "#/components/schemas/AuditEvent"
                                                },
                                            },
                                            "RequestId": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS4-HMAC-SHA256 (SigV4), service ec2",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["Error", "RequestId"],
                    "properties": {
                        "Error": {
                            "type": "object",
                            "required": ["Code", "Message"],
                            "properties": {
                                "Code": {"type": "string"},
                                "Message": {"type": "string"},
                            },
                        },
                        "RequestId": {"type": "string"},
                    },
                },
                "Instance": {
                    "type": "object",
                    "required": ["InstanceId", "Region", "State", "Architecture", "Tags"],
                    "properties": {
                        "InstanceId": {"type": "string"},
                        "Region": {"type": "string"},
                        "AvailabilityZone": {"type": "string"},
                        "Architecture": {"type": "string"},
                        "State": {
                            "enum": [
                                "pending",
                                "running",
                                "shutting-down",
                                "terminated",
                                "stopping",
                                "stopped",
                            ]
                        },
                        "Backend": {"type": "string"},
                        "Tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "AuditEvent": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "time": {"type": "string", "format": "date-time"},
                        "request_id": {"type": "string"},
                        "principal": {"type": ["string", "null"]},
                        "access_key_id": {"type": ["string", "null"]},
                        "source_ip": {"type": ["string", "null"]},
                        "action": {"type": "string"},
                        "instance_id": {"type": ["string", "null"]},
                        "region": {"type": ["string", "null"]},
                        "decision": {"type": ["string", "null"]},
                        "reason": {"type": ["string", "null"]},
                        "outcome": {"type": "string"},
                        "error_code": {"type": ["string", "null"]},
                        "message": {"type": ["string", "null"]},
                        "latency_ms": {"type": ["number", "null"]},
                        "dry_run": {"type": "boolean"},
                        "backend": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
