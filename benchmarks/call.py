"""The synthetic call every observer benchmark plays, frame for frame the same in every run.

A call is a loop of 10-second exchanges on a 20 ms tick, like a transport delivers audio:

- the microphone sends a 20 ms ``InputAudioRawFrame`` every tick (speech while the user
  speaks, silence otherwise), with VAD edges, interim and final transcriptions;
- the LLM streams its reply (``LLMTextFrame`` tokens) with its metrics;
- the TTS sends 4 s of 20 ms ``TTSAudioRawFrame``s, a ``TTSTextFrame`` after each word's
  audio, and its metrics; the output transport plays the audio (paced by the clock, ``speed``
  times faster than real time) and announces the bot's speech;
- a tool call and its result every minute.

The frames are queued by the simulated clock, never by how long the pipeline took, so every
run of a call carries exactly the same frames whatever the observer costs.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    ProcessingMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from tests.support.pipeline import (
    FRAME_SECS,
    RATE,
    NullOutputTransport,
    Passthrough,
    silence,
    tone,
    transcription,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask

__all__ = ["TICKS_PER_MINUTE", "CallRun", "EndStampingOutput", "play_call"]

TICKS_PER_MINUTE = int(60 / FRAME_SECS)
_MARKERS = (InputAudioRawFrame, TTSStoppedFrame)
_CYCLE = 500  # ticks: one 10-second exchange
_USER_SPEAKS = (0, 120)  # 2.4 s of speech
_INTERIMS = (25, 50, 75, 100)
_FINAL = 130
_TOOL_CALL = 132
_LLM_START = 135
_LLM_TOKENS = 12
_TTS_START = 160
_TTS_TICKS = 200  # 4 s of bot speech
_TICKS_PER_WORD = 20
_STT_TIME = "2026-01-01T00:00:00+00:00"
_WORDS = ("Sure,", "I", "can", "help", "with", "that;", "your", "order", "ships", "today.")


class EndStampingOutput(NullOutputTransport):
    """The paced output transport, noting when the EndFrame leaves it (monotonic clock)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.end_left_at: float | None = None
        self.cpu_at_end: float | None = None

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        if isinstance(frame, EndFrame) and direction == FrameDirection.DOWNSTREAM:
            self.end_left_at = time.monotonic()
            self.cpu_at_end = time.process_time()
        await super().push_frame(frame, direction)


@dataclass
class CallRun:
    """What one call cost: frames it carried, CPU seconds in the call and in total."""

    frames: int
    seconds: float
    cpu_in_call: float
    cpu_total: float
    wall: float
    end_left_at: float


class _Frames:
    """Pre-built frames reused by reference where Pipecat allows it (audio payloads)."""

    def __init__(self) -> None:
        self.speech = tone(FRAME_SECS)
        self.quiet = silence(FRAME_SECS)
        self.bot = tone(FRAME_SECS, freq=220.0)

    def tick(self, tick: int) -> list[Frame]:
        """The frames the call sends at ``tick`` (20 ms each), in order."""
        at, cycle = tick % _CYCLE, tick // _CYCLE
        user_speaking = _USER_SPEAKS[0] <= at < _USER_SPEAKS[1]
        frames: list[Frame] = [
            InputAudioRawFrame(
                audio=self.speech if user_speaking else self.quiet, sample_rate=RATE, num_channels=1
            )
        ]
        if at == _USER_SPEAKS[0]:
            frames.append(UserStartedSpeakingFrame())
        elif at == _USER_SPEAKS[1]:
            frames.append(UserStoppedSpeakingFrame())
        if at in _INTERIMS:
            frames.append(InterimTranscriptionFrame("I would like", "caller", _STT_TIME))
        if at == _FINAL:
            frames.append(transcription(f"I would like to check on order {cycle}."))
        if at == _TOOL_CALL and cycle % 6 == 5:
            frames.extend(_tool_call(cycle))
        if at == _LLM_START:
            frames.append(LLMFullResponseStartFrame())
        elif _LLM_START < at <= _LLM_START + _LLM_TOKENS:
            frames.append(LLMTextFrame(f"token{at - _LLM_START} "))
        elif at == _LLM_START + _LLM_TOKENS + 1:
            frames.extend((LLMFullResponseEndFrame(), _llm_metrics()))
        if at == _TTS_START:
            frames.append(TTSStartedFrame())
        if _TTS_START <= at < _TTS_START + _TTS_TICKS:
            frames.append(TTSAudioRawFrame(self.bot, RATE, 1))
            spoken = at - _TTS_START + 1
            if spoken % _TICKS_PER_WORD == 0:
                frames.append(TTSTextFrame(_WORDS[spoken // _TICKS_PER_WORD - 1], "word"))
        elif at == _TTS_START + _TTS_TICKS:
            frames.extend((TTSStoppedFrame(), _tts_metrics()))
        return frames


def _tool_call(cycle: int) -> tuple[Frame, Frame]:
    call_id = f"tool-{cycle}"
    arguments = {"order": cycle}
    return (
        FunctionCallInProgressFrame("lookup_order", call_id, arguments),
        FunctionCallResultFrame(
            "lookup_order", call_id, arguments, {"status": "shipped", "order": cycle}, None
        ),
    )


def _llm_metrics() -> MetricsFrame:
    return MetricsFrame(
        data=[
            TTFBMetricsData(processor="LLMService#0", value=0.42, model="bench-llm"),
            ProcessingMetricsData(processor="LLMService#0", value=0.61, model="bench-llm"),
            LLMUsageMetricsData(
                processor="LLMService#0",
                model="bench-llm",
                value=LLMTokenUsage(prompt_tokens=820, completion_tokens=24, total_tokens=844),
            ),
        ]
    )


def _tts_metrics() -> MetricsFrame:
    return MetricsFrame(
        data=[
            TTFBMetricsData(processor="TTSService#0", value=0.18, model="bench-tts"),
            TTSUsageMetricsData(processor="TTSService#0", value=58, model="bench-tts"),
        ]
    )


class _Tail(Passthrough):
    """The last hop (standing in for the assistant aggregator): notes the last microphone
    frame and the last end of TTS (which the output transport passes on once the audio
    before it has played) that made it through the whole pipeline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_seen: dict[type, int] = {}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, _MARKERS):
            self.last_seen[type(frame)] = frame.id
        await super().process_frame(frame, direction)


def _observer_queues(task: PipelineTask) -> list[asyncio.Queue[Any]]:
    # Benchmark-only look inside Pipecat (0.0.x TaskObserver, 1.x WorkerObserver): the
    # queue each observer is fed from. Without it, catching up waits for the pipeline only.
    proxies = getattr(getattr(task, "_observer", None), "_proxies", None)
    if not isinstance(proxies, dict):
        return []
    queues = (getattr(proxy, "queue", None) for proxy in proxies.values())
    return [queue for queue in queues if isinstance(queue, asyncio.Queue)]


async def _caught_up(
    task: PipelineTask,
    tail: _Tail,
    queued: dict[type, int],
    drained: Callable[[], bool] | None,
    timeout: float = 60.0,
) -> None:
    """Waits until the pipeline and every observer have handled what was queued so far,
    and the observer has sent what it recorded (``drained``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (
            tail.last_seen == queued
            and all(q.empty() for q in _observer_queues(task))
            and (drained is None or drained())
        ):
            return
        await asyncio.sleep(0.002)


async def _drive(
    task: PipelineTask,
    tail: _Tail,
    ticks: int,
    speed: float,
    on_minute: Callable[[int], None] | None,
    drained: Callable[[], bool] | None,
) -> int:
    """Queues the call's frames by the simulated clock, then the EndFrame.

    Memory is sampled (``on_minute``) and the call is ended only once the pipeline and the
    observers have caught up, so what is measured there is the call's state, not a backlog
    that running faster than real time can leave in the queues.
    """
    frames = _Frames()
    loop = asyncio.get_running_loop()
    started = loop.time()
    count = 0
    markers: dict[type, int] = {}
    for tick in range(ticks):
        if on_minute is not None and tick % TICKS_PER_MINUTE == 0:
            paused = loop.time()
            await _caught_up(task, tail, markers, drained)
            on_minute(tick // TICKS_PER_MINUTE)
            started += loop.time() - paused
        batch = frames.tick(tick)
        markers.update((type(f), f.id) for f in batch if isinstance(f, _MARKERS))
        await task.queue_frames(batch)
        count += len(batch)
        # Due by the simulated clock: a late wake-up does not change what is sent.
        delay = started + (tick + 1) * FRAME_SECS / speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    await _caught_up(task, tail, markers, drained)
    if on_minute is not None:
        on_minute(ticks // TICKS_PER_MINUTE)
    await task.queue_frame(EndFrame())
    return count + 1


async def play_call(
    *,
    minutes: float,
    speed: float,
    observers: Sequence[Any] = (),
    recorder: FrameProcessor | None = None,
    on_minute: Callable[[int], None] | None = None,
    delivered: Callable[[], Awaitable[None]] | None = None,
    drained: Callable[[], bool] | None = None,
    delivery_timeout: float = 15.0,
) -> CallRun:
    """Plays one call through a real PipelineTask and measures it.

    Pipeline: four pass-through hops standing in for STT, user aggregator, LLM and TTS,
    the paced output transport, the recorder (when there is one), and one more hop for
    the assistant aggregator. With ``on_minute``, the call is caught up (see ``_drive``) at
    every simulated minute; ``drained`` adds the observer's uploads to what is caught up.
    ``delivered`` waits for what the observer still sends after the pipeline has finished,
    so that work is counted too.
    """
    output = EndStampingOutput(speed=speed)
    tail = _Tail()
    pipeline = Pipeline(
        [
            *(Passthrough() for _ in range(4)),
            output,
            *([recorder] if recorder is not None else []),
            tail,
        ]
    )
    task = PipelineTask(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        observers=list(observers),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    ticks = int(minutes * TICKS_PER_MINUTE)
    runner = PipelineRunner(handle_sigint=False)
    wall0, cpu0 = time.monotonic(), time.process_time()
    _, frames = await asyncio.gather(
        runner.run(task), _drive(task, tail, ticks, speed, on_minute, drained)
    )
    if delivered is not None:
        try:
            await asyncio.wait_for(delivered(), delivery_timeout)
        except asyncio.TimeoutError:
            pass
    cpu_total = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    assert output.end_left_at is not None
    assert output.cpu_at_end is not None
    return CallRun(
        frames=frames,
        seconds=ticks * FRAME_SECS,
        cpu_in_call=output.cpu_at_end - cpu0,
        cpu_total=cpu_total,
        wall=wall,
        end_left_at=output.end_left_at,
    )
