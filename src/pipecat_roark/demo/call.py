"""One scripted call through a real Pipecat pipeline, wired the way an application wires it.

``transport.input() -> STT -> user aggregator (Silero VAD) -> LLM -> TTS ->
transport.output() -> recorder -> assistant aggregator``, run by a ``PipelineTask`` with the
caller's observers. Everything else in the demo (the backend, the observer, the console)
sits around this function.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import EndFrame, LLMMessagesAppendFrame, LLMRunFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from ._compat import PipelineParams, new_pipeline_task, run_pipeline_task
from .clock import PlayoutClock
from .llm import IDLE_NOTICE, ScriptedLLMService, tools_schema
from .scenarios import Scenario
from .stt import DECODER_SAMPLE_RATE, PocketsphinxSTTService
from .timeline import CallTimeline
from .transports import DemoTransport, LineRecording, RenderedLine
from .tts import EspeakTTSService
from .voices import CallerVoice

__all__ = [
    "SAMPLE_RATE",
    "CallEvents",
    "CallResult",
    "ToolUse",
    "play_call",
    "render_caller_lines",
]

SAMPLE_RATE = DECODER_SAMPLE_RATE


@dataclass
class ToolUse:
    name: str
    arguments: dict[str, Any]
    result: Any = None


@dataclass
class CallResult:
    """What happened, as the pipeline saw it."""

    scenario: Scenario
    timeline: CallTimeline
    caller_heard: list[str] = field(default_factory=list)
    bot_said: list[tuple[str, bool]] = field(default_factory=list)
    tool_uses: list[ToolUse] = field(default_factory=list)
    bot_hung_up: bool = False
    wall_secs: float = 0.0

    @property
    def duration_secs(self) -> float:
        timeline = self.timeline
        ends = [line.end_sample for line in timeline.caller_lines]
        ends += [speech.end_sample for speech in timeline.bot_speech]
        return timeline.seconds(max(ends, default=0))


class CallEvents:
    """Hooks for whoever shows the call as it happens; every method is optional."""

    def call_starting(self, timeline: CallTimeline) -> None: ...

    def caller_heard(self, text: str) -> None: ...

    def bot_said(self, text: str, interrupted: bool) -> None: ...

    def tool_called(self, use: ToolUse) -> None: ...


def render_caller_lines(scenario: Scenario, voice: CallerVoice | None = None) -> list[RenderedLine]:
    """Synthesises the caller's script before the call, so the call itself never waits on it."""
    voice = voice or CallerVoice(sample_rate=SAMPLE_RATE)
    return [RenderedLine(step, voice.speak(step.text).audio) for step in scenario.caller]


async def play_call(
    scenario: Scenario,
    *,
    lines: Sequence[RenderedLine] | None = None,
    speed: float | None = 1.0,
    observers: Sequence[BaseObserver] = (),
    recorder: FrameProcessor | None = None,
    recording: LineRecording | None = None,
    events: CallEvents | None = None,
    trace_conversation_id: str | None = None,
) -> CallResult:
    """Plays ``scenario`` through a real pipeline and returns what the pipeline saw.

    Args:
        scenario: the call to play.
        lines: the caller's lines already synthesised (see :func:`render_caller_lines`).
        speed: how fast speech goes by (``None``: as fast as the machine allows).
        observers: passed to the ``PipelineTask`` (for instance a ``RoarkObserver``).
        recorder: placed right after ``transport.output()`` (an observer's audio processor).
        recording: a stereo recording of the line, kept by the output transport.
        events: told about the call's timeline, then about each turn as it happens.
        trace_conversation_id: turns Pipecat's OpenTelemetry tracing on, the conversation
            span carrying this id (the observer's ``pipecat_call_id``); spans go to the
            tracer provider set up beforehand (``pipecat.utils.tracing.setup_tracing``).
    """
    events = events or CallEvents()
    lines = list(lines) if lines is not None else render_caller_lines(scenario)
    clock = PlayoutClock(sample_rate=SAMPLE_RATE, speed=speed)
    timeline = CallTimeline(SAMPLE_RATE)
    events.call_starting(timeline)
    result = CallResult(scenario=scenario, timeline=timeline)

    transport = DemoTransport(lines=lines, clock=clock, timeline=timeline, recording=recording)
    stt = PocketsphinxSTTService()
    llm = ScriptedLLMService(scenario=scenario)
    tts = EspeakTTSService()
    context = LLMContext(
        messages=[{"role": "system", "content": scenario.agent.prompt}],
        tools=tools_schema(scenario),
    )
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()]),
            user_idle_timeout=scenario.user_idle_secs,
        ),
    )
    processors: list[FrameProcessor] = [
        transport.input(),
        stt,
        user_aggregator,
        llm,
        tts,
        transport.output(),
    ]
    if recorder is not None:
        processors.append(recorder)
    processors.append(assistant_aggregator)

    task = new_pipeline_task(
        Pipeline(processors),
        params=PipelineParams(
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_sample_rate=SAMPLE_RATE,
            enable_metrics=True,
        ),
        observers=list(observers),
        enable_rtvi=False,
        idle_timeout_secs=None,
        enable_tracing=trace_conversation_id is not None,
        conversation_id=trace_conversation_id,
    )

    async def on_client_connected(transport: DemoTransport, client: Any) -> None:
        await task.queue_frames([LLMRunFrame()])

    async def on_user_turn_idle(aggregator: Any) -> None:
        notice: Any = {"role": "system", "content": IDLE_NOTICE}
        await aggregator.push_frame(LLMMessagesAppendFrame([notice], run_llm=True))

    async def on_user_turn_stopped(aggregator: Any, strategy: Any, message: Any) -> None:
        text = str(getattr(message, "content", "") or "")
        result.caller_heard.append(text)
        events.caller_heard(text)

    async def on_assistant_turn_stopped(aggregator: Any, message: Any) -> None:
        text = str(getattr(message, "content", "") or "")
        interrupted = bool(getattr(message, "interrupted", False))
        result.bot_said.append((text, interrupted))
        events.bot_said(text, interrupted)

    async def on_tool_result(service: Any, name: str, arguments: Any, returned: Any) -> None:
        use = ToolUse(name, dict(arguments), returned)
        result.tool_uses.append(use)
        events.tool_called(use)

    async def on_pipeline_finished(task: Any, frame: Any) -> None:
        result.bot_hung_up = isinstance(frame, EndFrame)

    transport.add_event_handler("on_client_connected", on_client_connected)
    user_aggregator.add_event_handler("on_user_turn_idle", on_user_turn_idle)
    user_aggregator.add_event_handler("on_user_turn_stopped", on_user_turn_stopped)
    assistant_aggregator.add_event_handler("on_assistant_turn_stopped", on_assistant_turn_stopped)
    llm.add_event_handler("on_tool_result", on_tool_result)
    task.add_event_handler("on_pipeline_finished", on_pipeline_finished)

    started = time.monotonic()
    deadline = asyncio.create_task(_end_after(task, scenario.max_call_secs, clock))
    try:
        with _short_collections():
            await run_pipeline_task(task)
    finally:
        deadline.cancel()
    result.wall_secs = time.monotonic() - started
    if deadline.done() and not deadline.cancelled():
        result.bot_hung_up = False
    return result


@contextlib.contextmanager
def _short_collections() -> Iterator[None]:
    """Keeps the garbage collector's pauses short while the call plays.

    Pipecat 1.x's recorder pads any wall-clock gap over 200 ms in the audio with silence,
    as if the microphone had been muted, and a full collection of a heap this size (Pipecat,
    onnxruntime, the server) takes about that long. Collected once now, what exists is left
    out of the collections that run during the call.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _end_after(task: Any, max_call_secs: float, clock: PlayoutClock) -> None:
    """Ends a call that has run past the scenario's length on its own timeline."""
    await clock.wait_sent(round(max_call_secs * clock.sample_rate))
    logger.warning(f"demo call still running after {max_call_secs:.0f} s of call time; ending it")
    await task.queue_frame(EndFrame())
