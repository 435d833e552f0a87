"""A demo call played with Pipecat's tracing on, its spans sent to a server's /v1/traces."""

from __future__ import annotations

from pipecat_roark import RoarkObserver
from pipecat_roark.demo.call import play_call
from pipecat_roark.demo.scenarios import SCENARIOS
from pipecat_roark.demo.tracing import SpanShipper


async def traced_demo_call(base_url: str, key: str, scenario: str = "booking") -> tuple[str, int]:
    """Plays ``scenario`` (as fast as the machine allows) through the observer with tracing
    on and ships its spans with the real OTLP HTTP exporter; (pipecatCallId, spans sent)."""
    spans = SpanShipper(base_url, key)
    observer = RoarkObserver(api_key=key, agent_id="luigi", base_url=base_url)
    await play_call(
        SCENARIOS[scenario],
        speed=None,
        observers=[observer],
        recorder=observer.audio_processor,
        trace_conversation_id=observer.pipecat_call_id,
    )
    await observer.aflush()
    return observer.pipecat_call_id, await spans.ship()
