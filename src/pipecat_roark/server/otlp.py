"""OTLP/HTTP trace bodies (protobuf or JSON, optionally gzipped) to plain span records.

Decoding is the official ``opentelemetry-proto`` messages' own; the only thing done here
is OTLP/JSON's one departure from protobuf's JSON mapping (trace and span ids are hex,
not base64). Anything that does not decode raises ``OtlpError``, which the route answers
with 400.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = [
    "CONVERSATION_ID",
    "OtlpError",
    "Span",
    "decode_spans",
    "encode_response",
]

CONVERSATION_ID = "conversation.id"
PROTOBUF = "application/x-protobuf"
JSON_TYPE = "application/json"
# A gzipped body may not inflate past this (a small body can hide a huge one).
MAX_INFLATED = 16 * 1024 * 1024
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class OtlpError(ValueError):
    """The body is not an OTLP trace export this server reads."""


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    conversation_id: str | None


def decode_spans(body: bytes, content_type: str, content_encoding: str | None) -> list[Span]:
    """The spans of an export request, or ``OtlpError``."""
    raw = _inflate(body) if (content_encoding or "").strip().lower() == "gzip" else body
    kind = content_type.split(";", 1)[0].strip().lower()
    request = ExportTraceServiceRequest()
    try:
        if kind == PROTOBUF:
            request.ParseFromString(raw)
        elif kind == JSON_TYPE:
            json_format.ParseDict(_hex_ids_to_base64(json.loads(raw)), request)
        else:
            raise OtlpError(f"Content-Type must be {PROTOBUF} or {JSON_TYPE}, not {kind!r}")
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, OtlpError):
            raise
        raise OtlpError(f"not an OTLP trace export: {exc}") from None
    return [
        _span(span)
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def encode_response(content_type: str) -> tuple[bytes, str]:
    """An empty ``ExportTraceServiceResponse`` (all accepted) in the request's encoding."""
    if content_type.split(";", 1)[0].strip().lower() == JSON_TYPE:
        return b"{}", JSON_TYPE
    return ExportTraceServiceResponse().SerializeToString(), PROTOBUF


def _inflate(body: bytes) -> bytes:
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(body, MAX_INFLATED)
        if inflater.unconsumed_tail:
            raise OtlpError(f"the gzipped body inflates past {MAX_INFLATED} bytes")
        return raw
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise OtlpError(f"Content-Encoding gzip, but the body is not gzip: {exc}") from None


def _hex_ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _ID_FIELDS and isinstance(item, str):
            try:
                item = base64.b64encode(bytes.fromhex(item)).decode()
            except ValueError:
                raise OtlpError(f"{key}: not a hex id") from None
        out[key] = _hex_ids_to_base64(item)
    return out


def _span(span: Any) -> Span:
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise OtlpError("a span without a 16-byte trace id and an 8-byte span id")
    attributes = {kv.key: _value(kv.value) for kv in span.attributes}
    conversation = attributes.get(CONVERSATION_ID)
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() if span.parent_span_id else None,
        name=span.name,
        start_ns=int(span.start_time_unix_nano),
        end_ns=int(span.end_time_unix_nano),
        attributes=attributes,
        status_code=int(span.status.code),
        status_message=span.status.message,
        conversation_id=str(conversation) if conversation not in (None, "") else None,
    )


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode()
    return getattr(value, kind)
