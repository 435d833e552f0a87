"""Property-based fuzzing: no request gets a 5xx, on SQLite and on PostgreSQL.

The served OpenAPI schema drives schemathesis; hypothesis strategies add the values a schema
does not describe (text with NUL and lone surrogates, JSON nested past any limit, NaN and
Infinity). A bounded number of requests each, against a real ``serve`` process per database.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .harness import EVENTS, ended, started  # noqa: E402
from .services import ServeProcess, cli_key, serve_storage  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def bounded(examples: int) -> Any:
    """A fixed, repeatable number of examples: CI runs the same cases every time."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    storage = serve_storage(data_dir, postgres)
    key = cli_key("fuzz", storage)
    server = ServeProcess.start(storage, {}, data_dir / "serve.log")
    try:
        yield server.url, key
    finally:
        server.stop()
        log = (data_dir / "serve.log").read_text()
        assert "Traceback" not in log, log[-3000:]


def test_no_request_breaks_the_server_or_its_schema(live_server: tuple[str, str]) -> None:
    url, key = live_server
    # The pytest plugin's lazy schemas do not run on this pytest; drive hypothesis directly.
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=r"/chunks/")
    headers = {"authorization": f"Bearer {key}", "x-roark-api-key": key}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @bounded(30)
        def request_is_answered_within_the_schema(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

        request_is_answered_within_the_schema()


# Text a database cannot hold as it is, among ordinary text.
_BAD_CHARACTERS = st.sampled_from(["\x00", chr(0xD800), chr(0xDBFF), chr(0xDC00), chr(0xDFFF)])
_TEXT = st.lists(st.one_of(st.text(max_size=8), _BAD_CHARACTERS), max_size=6).map("".join)
_NUMBER = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.floats(allow_nan=False),
    st.integers(-(2**70), 2**70),
)
_TIME = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2026-01-01T12:00:00+00:00",
            "2026-01-01T12:00:00",
        ]
    ),
    _TEXT,
)


def _nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"n": leaf}
    return leaf


_DEEP = st.builds(_nested, st.integers(0, 400), st.one_of(_NUMBER, _TEXT))
_ARGUMENTS = st.one_of(
    _TEXT,
    st.integers(0, 4000).map(lambda depth: "[" * depth + "]" * depth),
    _DEEP.map(lambda value: json.dumps(value)),
)


@st.composite
def _calls(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    call_id = "fuzz-" + draw(st.text("abcdef0123456789", min_size=8, max_size=8))
    start = started(
        call_id,
        eventTimestamp=draw(_TIME),
        agentId=draw(_TEXT.filter(bool)),
        agentName=draw(_TEXT),
        agentPrompt=draw(_TEXT),
    )
    end = ended(
        call_id,
        eventTimestamp=draw(_TIME),
        callStartedAt=draw(_TIME),
        callEndedAt=draw(_TIME),
        callEndedReason=draw(_TEXT),
        toolCalls=[
            {
                "kind": "tool_call",
                "toolCallId": draw(_TEXT),
                "name": draw(_TEXT),
                "arguments": draw(_ARGUMENTS),
                "timestamp": draw(_TIME),
            },
            {
                "kind": "tool_result",
                "toolCallId": draw(_TEXT),
                "content": draw(_TEXT),
                "timestamp": draw(_TIME),
            },
        ],
        metrics=[
            {
                "kind": draw(_TEXT.filter(bool)),
                "processor": draw(_TEXT),
                "value": draw(_NUMBER),
                "timestamp": draw(_TIME),
                draw(_TEXT): draw(_DEEP),
            }
        ],
    )
    turn = end["transcript"][0]
    turn.update(content=draw(_TEXT), timestamp=draw(_TIME), userId=draw(_TEXT))
    turn.update(audioOffsetMs=draw(st.integers(0, 2**70)), endAudioOffsetMs=draw(_NUMBER))
    return start, end


def test_bad_values_never_get_a_5xx_and_stored_calls_read_back(
    live_server: tuple[str, str],
) -> None:
    url, key = live_server
    headers = {
        "authorization": f"Bearer {key}",
        "x-roark-api-key": key,
        "content-type": "application/json",
    }

    stored_calls: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

        @given(call=_calls())
        @bounded(40)
        def call_is_stored_or_refused_and_reads_answer(
            call: tuple[dict[str, Any], dict[str, Any]],
        ) -> None:
            stored = None
            for body in call:
                answer = client.post(EVENTS, content=json.dumps(body).encode())
                assert answer.status_code < 500, answer.text
                if answer.status_code == 200:
                    stored = answer.json()["callId"]
            if stored is None:
                return
            stored_calls.append(stored)
            for path in (
                f"/v1/call/{stored}",
                f"/v1/call/{stored}/transcript",
                f"/v1/call/{stored}/pipecat",
                f"/calls/{stored}.json",
                f"/calls/{stored}",
            ):
                read = client.get(path)
                assert read.status_code == 200, (path, read.text[:2000])

        call_is_stored_or_refused_and_reads_answer()
    # Most calls must land (only unparseable times and call-level conflicts are refused).
    assert len(stored_calls) >= 10, stored_calls


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBER, _TEXT, _TIME.map(lambda time: {"t": time})),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=12,
)
# A cursor's sort key as an edited URL might hold it: a time, text, a number, anything.
_KEY = st.one_of(
    _TIME.map(lambda time: {"t": time}),
    _TEXT,
    st.integers(-(2**70), 2**70),
    _JSON,
)


def _cursor(parts: list[Any] | bytes) -> str:
    raw = parts if isinstance(parts, bytes) else json.dumps(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_edited_cursors_and_query_text_never_get_a_5xx(live_server: tuple[str, str]) -> None:
    url, key = live_server
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

        @given(
            path=st.sampled_from(["/v1/call", "/v1/agent", "/calls.json", "/calls"]),
            sort=st.sampled_from(["createdAt", "startedAt", "endedAt", "duration", "status"]),
            key=_KEY,
            row_id=st.one_of(_TEXT, _JSON),
            garbage=st.one_of(st.none(), st.binary(max_size=64)),
            text=_TEXT,
        )
        @bounded(80)
        def listing_answers(
            path: str, sort: str, key: Any, row_id: Any, garbage: bytes | None, text: str
        ) -> None:
            # Each list's own sort, so the cursor passes its first check and reaches the query.
            own_sort = {"/v1/agent": "createdAt", "/calls.json": "startedAt", "/calls": "startedAt"}
            after = _cursor(garbage or [own_sort.get(path, sort), "desc", key, row_id])
            # A URL carries bytes: a lone surrogate arrives as its UTF-8-like bytes.
            raw = text.encode("utf-8", "surrogatepass")
            params: dict[str, str | bytes] = {"after": after}
            if path == "/v1/call":
                params |= {"sortBy": sort, "searchText": raw}
            elif path.startswith("/calls"):
                params |= {"q": raw, "from": raw, "to": raw}
            answer = client.get(f"{path}?{urlencode(params)}")
            assert answer.status_code < 500, answer.text

        listing_answers()
