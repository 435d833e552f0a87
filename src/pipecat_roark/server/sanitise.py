"""Values no database can hold, made storable in one documented way, with a warning each.

PostgreSQL refuses NUL in text; no UTF-8 store (nor a JSON answer) can hold a lone
surrogate; JSON has no NaN or Infinity, though Python's ``json`` writes them; structures
nested thousands of levels deep break every recursive reader. A call must never be lost to
one such value, so each is replaced (docs/server.md, "Bad values") and the replacement is
reported, naming the field, in the ``warnings`` of the answer and of the stored call.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypedDict

__all__ = [
    "MAX_DEPTH",
    "REPLACEMENT",
    "Repair",
    "clean_json",
    "clean_text",
    "load_json",
    "nesting_depth",
    "parse_embedded_json",
    "repair",
]

REPLACEMENT = "\ufffd"
MAX_DEPTH = 32
"""Objects and lists nested deeper than this are kept as their JSON text."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Repair(TypedDict):
    """What was changed in a stored value, and what it was."""

    field: str
    code: str
    message: str
    original: str | None


def repair(field: str, code: str, message: str, original: str | None = None) -> Repair:
    return Repair(field=field, code=code, message=f"{field}: {message}", original=original)


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to, until they are replaced."""

    def __init__(self, text: str) -> None:
        self.text = text


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def _join(path: str, step: str | int) -> str:
    return f"{path}.{step}" if path else str(step)


def clean_json(value: Any, repairs: list[Repair], path: str = "", depth: int = 0) -> Any:
    """A parsed JSON value made storable; each change is appended to ``repairs``."""
    if isinstance(value, str):
        cleaned = clean_text(value)
        if cleaned != value:
            repairs.append(
                repair(
                    path or "body",
                    "text_replaced",
                    "NUL or lone surrogate characters replaced by U+FFFD",
                )
            )
        return cleaned
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, _NonFinite) else repr(value)
        repairs.append(
            repair(path or "body", "non_finite_number", "not a finite number: null", text)
        )
        return None
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        repairs.append(
            repair(
                path or "body",
                "nested_too_deep",
                f"nested more than {MAX_DEPTH} levels: kept as its JSON text",
            )
        )
        return clean_text(json.dumps(_finite(value), ensure_ascii=False))
    if isinstance(value, dict):
        cleaned_dict: dict[str, Any] = {}
        for key, item in value.items():
            clean_key = clean_text(key)
            if clean_key != key:
                repairs.append(
                    repair(_join(path, clean_key), "text_replaced", "name had NUL or surrogates")
                )
            cleaned_dict[clean_key] = clean_json(item, repairs, _join(path, clean_key), depth + 1)
        return cleaned_dict
    if isinstance(value, list):
        return [
            clean_json(item, repairs, _join(path, index), depth + 1)
            for index, item in enumerate(value)
        ]
    return value


def _finite(value: Any) -> Any:
    """For the JSON text of a too-deep value: non-finite numbers as null."""
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def load_json(raw: bytes | str, keys: frozenset[str] = frozenset()) -> tuple[Any, list[Repair]]:
    """Parse a request body and make it storable, except the top-level fields ``keys``
    (identifiers, which are validated instead: two ids must never become one).

    Raises ``ValueError`` (``json.JSONDecodeError`` for bad syntax) and ``RecursionError``
    for a body nested past what the parser can follow.
    """
    value = json.loads(raw, parse_constant=_NonFinite)
    repairs: list[Repair] = []
    if not isinstance(value, dict):
        return clean_json(value, repairs), repairs
    kept = {key: value[key] for key in keys if isinstance(value.get(key), str)}
    cleaned = clean_json({k: v for k, v in value.items() if k not in kept}, repairs)
    return {**kept, **cleaned}, repairs


def nesting_depth(text: str) -> int:
    """How deep the objects and lists of a JSON text nest, without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def parse_embedded_json(text: str) -> Any:
    """A JSON text held in a string field (tool arguments), parsed for display.

    Text that is not JSON, or nests deeper than ``MAX_DEPTH``, is returned as it is.
    """
    if nesting_depth(text) > MAX_DEPTH:
        return text
    try:
        value = json.loads(text, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        return text
    return clean_json(value, [])
