"""The demo's OpenTelemetry spans, sent to its backend's ``/v1/traces`` when the call ends.

The demo's services use Pipecat's tracing decorators. Spans are kept in memory while the
call plays and sent afterwards with the OTLP HTTP exporter, from a thread of its own and
in the order they ended (the conversation span last, as a live exporter sends it): the
embedded server answers in this event loop, which an exporter posting from the loop's
own thread would block.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["SpanShipper"]

_BATCH = 64


class SpanShipper:
    """Collects Pipecat's spans (tracer provider set up here or added to) and sends them
    to ``base_url/v1/traces`` with the project's key."""

    def __init__(self, base_url: str, api_key: str) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                "--tracing needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http "
                "(pip install 'pipecat-roark[demo]')"
            ) from exc
        self._kept = InMemorySpanExporter()
        self._exporter: Any = OTLPSpanExporter(
            endpoint=f"{base_url}/v1/traces", headers={"x-roark-api-key": api_key}
        )
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        provider.add_span_processor(SimpleSpanProcessor(self._kept))

    async def ship(self) -> int:
        """Send the spans kept so far; returns how many the backend accepted."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        # Only Pipecat's: in this process the server's own requests are traced too.
        pipecat = [span for span in self._kept.get_finished_spans() if _is_pipecat(span)]
        spans = sorted(pipecat, key=lambda span: span.end_time or 0)
        self._kept.clear()
        sent = 0
        for start in range(0, len(spans), _BATCH):
            batch = spans[start : start + _BATCH]
            result = await asyncio.to_thread(self._exporter.export, batch)
            if result is SpanExportResult.SUCCESS:
                sent += len(batch)
        return sent


def _is_pipecat(span: Any) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    name = str(getattr(scope, "name", "") or "")
    return name == "pipecat" or name.startswith("pipecat.")
