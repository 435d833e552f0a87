"""The call never breaks, never waits, and loses nothing the observer can keep."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import (
    BotSpeakingFrame,
    Frame,
    FunctionCallInProgressFrame,
    InputAudioRawFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    TextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed

from pipecat_roark import RoarkObserver
from pipecat_roark.observer.call_ended import NOT_ATTACHED
from tests.conftest import LogCapture
from tests.observer.helpers import assert_protocol, observer_for, roles_and_texts
from tests.support.backend import RecordingBackend, closed_port_url
from tests.support.pipeline import (
    FRAME_SECS,
    RATE,
    CallScript,
    Capture,
    PipelineParams,
    run_call,
    silence,
    tone,
    transcription,
)

REPO = Path(__file__).resolve().parents[2]


async def long_call(script: CallScript) -> None:
    """Ten exchanges over 2 000 microphone frames, the same frames in every run."""
    speech, quiet = tone(FRAME_SECS), silence(FRAME_SECS)
    for index in range(2000):
        turn, at = divmod(index, 200)
        if at == 0:
            await script.push(UserStartedSpeakingFrame())
        elif at == 60:
            await script.push(UserStoppedSpeakingFrame(), transcription(f"question {turn}"))
        elif at == 70:
            await script.bot_says(["Answer", "number", f"{turn}."], 1.5, wait=False)
        audio = speech if at < 60 else quiet
        await script.push(InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1))
        await script.wait(FRAME_SECS)


def projection(capture: Capture) -> dict[str, list[Any]]:
    """What the pipeline produced: each audio stream in order, every other frame by kind
    and content (their interleaving follows the wall clock, which no two runs share)."""
    out: dict[str, list[Any]] = {"input": [], "output": [], "other": []}
    for frame in capture.frames:
        if isinstance(frame, InputAudioRawFrame):
            out["input"].append(frame.audio)
        elif isinstance(frame, OutputAudioRawFrame):
            out["output"].append(frame.audio)
        elif not isinstance(frame, BotSpeakingFrame):
            text = frame.text if isinstance(frame, TextFrame) else None
            out["other"].append((type(frame).__name__, text))
    out["other"].sort(key=repr)
    return out


async def _run_long_call(observer: RoarkObserver | None) -> Capture:
    observers = [observer] if observer else []
    after = [observer.audio_processor] if observer else []
    return await run_call(observers, long_call, after_output=after, speed=40.0, mic=False)


@pytest.mark.parametrize("backend_kind", ["unreachable", "never-answers"])
async def test_a_dead_backend_changes_nothing_in_the_call(
    backend: RecordingBackend, logs: LogCapture, backend_kind: str
) -> None:
    if backend_kind == "unreachable":
        observer = RoarkObserver(
            api_key="k", agent_id="a", base_url=closed_port_url(), flush_timeout=1.0
        )
    else:
        for kind in ("call-started", "call-ended", "presign", "upload"):
            backend.faults[kind] = lambda n: "hang"
        observer = observer_for(backend, flush_timeout=1.0)

    baseline = projection(await _run_long_call(None))
    observed = projection(await _run_long_call(observer))

    assert len(baseline["input"]) == 2000
    assert observed == baseline
    assert logs.at("ERROR") == []
    warnings = [m for m in logs.at("WARNING") if "pipecat-roark" in m]
    assert len(warnings) == 1, warnings
    assert "kept in the spool" in warnings[0]


class LaggingObserver(RoarkObserver):
    """Gets the event loop late, as an observer does on a busy loop: every hop is handled,
    then the observer's task waits far longer than the pipeline takes for a hop, so its
    queue grows through the call and Pipecat ends the call with hops still queued."""

    async def on_push_frame(self, data: FramePushed) -> None:
        await super().on_push_frame(data)
        await asyncio.sleep(0.02)


async def test_a_lagging_observer_still_sends_the_whole_call(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    observer = LaggingObserver(api_key="k", agent_id="a", base_url=backend.url)
    handed_over: list[bytes] = []

    async def keep(_: object, audio: bytes, *__: object) -> None:
        handed_over.append(bytes(audio))

    observer.audio_processor.add_event_handler("on_audio_data", keep)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Welcome", "to", "the", "shop."], 1.0)
        await script.user_says("a coffee please", 1.0)
        await script.bot_says(["Coming", "right", "up,", "goodbye."], 1.0, wait=False)

    # 10x real time, so that the observer's queue lags behind the call. Every turn must
    # arrive whole; their order is where each landed on the recording, and at ten times
    # real time a starved machine's microphone comes late (its order is checked at real
    # time in test_call_timeline.py).
    await run_call([observer], call, after_output=[observer.audio_processor], speed=10.0)
    assert observer._drained_hops > 0, "the queue never lagged: this test proves nothing"
    ended = backend.call_ended()
    assert sorted(roles_and_texts(ended)) == [
        ("assistant", "Coming right up, goodbye."),
        ("assistant", "Welcome to the shop."),
        ("user", "a coffee please"),
    ]
    assert backend.pcm() == b"".join(handed_over)  # every chunk, the tail one included
    assert_protocol(backend)


async def test_a_frame_that_breaks_the_observer_is_logged_once_and_the_call_goes_on(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    observer = observer_for(backend)
    circular: dict[str, Any] = {}
    circular["self"] = circular

    async def call(script: CallScript) -> None:
        await script.push(FunctionCallInProgressFrame("broken", "t1", circular))
        await script.push(FunctionCallInProgressFrame("broken", "t2", circular))
        await script.user_says("still here", 0.4)
        await script.bot_says(["Yes."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    failures = logs.matching("observer failed")
    assert len(failures) == 1
    assert "FunctionCallInProgressFrame" in failures[0]
    assert roles_and_texts(backend.call_ended()) == [("user", "still here"), ("assistant", "Yes.")]


async def test_call_ended_has_arrived_when_run_returns(backend: RecordingBackend) -> None:
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Bye."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    # No waiting here: run() returned, so the call is already at the backend.
    assert backend.call_ended()["transcript"][0]["content"] == "Bye."


BOT_THAT_EXITS = textwrap.dedent(
    """
    import asyncio, os, sys
    sys.path.insert(0, {repo!r})
    from pipecat_roark import RoarkObserver
    from tests.support.pipeline import run_call

    async def call(script):
        await script.bot_says(["Goodbye."], 0.3)

    async def main():
        observer = RoarkObserver(api_key="k", agent_id="a", base_url={url!r})
        await run_call([observer], call, after_output=[observer.audio_processor])

    asyncio.run(main())
    os._exit(0)  # a bot script that exits the moment run() returns
    """
)


async def test_a_bot_that_exits_right_after_run_loses_nothing(backend: RecordingBackend) -> None:
    script = BOT_THAT_EXITS.format(repo=str(REPO), url=backend.url)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for _ in range(3):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, stderr.decode()[-2000:]
    ended = backend.of("call-ended")
    assert len(ended) == 3
    assert all(e.body["transcript"][0]["content"] == "Goodbye." for e in ended)


async def test_a_slow_call_started_delays_nothing_and_loses_nothing(
    backend: RecordingBackend,
) -> None:
    backend.faults["call-started"] = lambda n: 3.0  # slower than the whole call
    observer = observer_for(backend)
    after = Capture()

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hello", "there."], 4.0)
        await script.user_says("hi", 1.0)
        await script.bot_says(["Bye."], 1.0)

    await run_call([observer], call, after_output=[observer.audio_processor, after], speed=10.0)
    kinds = [r.kind for r in backend.requests]
    assert kinds[0] == "call-started"
    assert kinds[-1] == "call-ended"
    assert len(backend.chunks()) >= 2
    assert roles_and_texts(backend.call_ended()) == [
        ("assistant", "Hello there."),
        ("user", "hi"),
        ("assistant", "Bye."),
    ]
    assert_protocol(backend)


def _is_pipecat_1() -> bool:
    from importlib.metadata import version

    return not version("pipecat-ai").startswith("0.")


async def test_observers_given_through_pipeline_params(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    """Pipecat 1.x drops PipelineParams(observers=...) without a word; we say it, once, and
    the recorder still delivers the call it captured, marked as sent without its observer."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hi."], 0.3)

    params: dict[str, Any] = {}
    try:
        PipelineParams(observers=[observer])
        params = {"observers": [observer]}
    except Exception:
        pass  # a PipelineParams that rejects the field cannot lose the observer silently
    await run_call([], call, after_output=[observer.audio_processor], params=params)
    errors = logs.matching("RoarkObserver is not attached")
    ended = backend.call_ended()
    kinds = {metric["kind"] for metric in ended.get("metrics", [])}
    if _is_pipecat_1():
        assert len(errors) == 1
        assert "PipelineTask(pipeline, observers=[observer])" in errors[0]
        assert NOT_ATTACHED in kinds
        assert "transcript" not in ended
        assert backend.pcm()  # the greeting is on the recording all the same
    else:
        assert errors == []
        assert NOT_ATTACHED not in kinds
        assert roles_and_texts(ended) == [("assistant", "Hi.")]
    assert backend.requests[0].kind == "call-started"
    assert len(backend.of("call-started")) == len(backend.of("call-ended")) == 1
    assert_protocol(backend)


async def test_an_observer_attached_to_the_task_logs_no_error(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.wait(0.1)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert logs.matching("not attached") == []


async def test_without_the_recorder_in_the_pipeline_the_call_is_sent_and_the_fix_named(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["No", "recording."], 0.3)

    await run_call([observer], call)
    ended = backend.call_ended()
    assert roles_and_texts(ended) == [("assistant", "No recording.")]
    assert "recordingSampleRate" not in ended
    assert logs.matching("place it right after transport.output()")


async def test_every_request_matches_the_protocol_types(backend: RecordingBackend) -> None:
    observer = observer_for(backend, agent_name="Name", agent_prompt="Prompt")

    async def call(script: CallScript) -> None:
        await script.bot_says(["Welcome."], 3.0)
        await script.user_says(["I need", "a table"], 2.0)
        await script.push(
            FunctionCallInProgressFrame("check", "c1", {"n": 2}),
        )
        await script.bot_says(["Booked."], 3.0)

    await run_call([observer], call, after_output=[observer.audio_processor], speed=20.0)
    kinds = {r.kind for r in backend.requests}
    assert kinds == {"call-started", "presign", "upload", "call-ended"}
    assert_protocol(backend)


def _frames_of(capture: Capture, kind: type[Frame]) -> list[Frame]:
    return [f for f in capture.frames if isinstance(f, kind)]


async def test_the_pipecat_internals_the_observer_relies_on_are_found(
    backend: RecordingBackend,
) -> None:
    """The observer's queue (drained at shutdown, spared events it has no use for), the
    recorder's buffers and handler tasks: if a Pipecat release renames them, this fails."""
    from pipecat_roark.observer import _pipecat_compat as compat

    observer = observer_for(backend)
    seen_queue: list[Any] = []

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hi."], 0.3)
        seen_queue.append(observer._queue)
        assert compat.track_buffer_lengths(observer.audio_processor) != (0, 0)
        assert compat.handler_tasks(observer.audio_processor, "on_audio_data") is not None
        assert compat.is_recording(observer.audio_processor) is True

    await run_call([observer], call, after_output=[observer.audio_processor])
    (queue,) = seen_queue
    assert isinstance(queue, asyncio.Queue)
    assert queue.put.__name__ == "put_wanted"
    assert queue.put_nowait.__name__ == "put_wanted_nowait"
    assert backend.call_ended()["transcript"][0]["content"] == "Hi."


class _CountingObserver(RoarkObserver):
    """Counts what Pipecat hands it, by frame class."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushes: Counter[str] = Counter()

    async def on_push_frame(self, data: Any) -> None:
        self.pushes[type(data.frame).__name__] += 1
        await super().on_push_frame(data)


async def test_frames_the_observer_has_no_use_for_never_wake_it(backend: RecordingBackend) -> None:
    # Most of a call's frames are audio; its own recorder places the call on the recording,
    # so the observer is spared every audio push, and the recording is still whole. Nor is
    # it woken for a frame it has no handler for (the transport's BotSpeakingFrames), nor
    # for an LLM's tokens and TTS audio past the first of each reply.
    observer = _CountingObserver(
        api_key="rk_test", agent_id="agent", base_url=backend.url, flush_timeout=5.0
    )

    async def call(script: CallScript) -> None:
        await script.user_says("Hello.", 0.4)
        await script.push(LLMTextFrame("Hi"), LLMTextFrame(" there."))
        await script.bot_says(["Hi", "there."], 0.4)

    await run_call([observer], call, after_output=[observer.audio_processor])
    unhandled = ("InputAudioRawFrame", "BotSpeakingFrame")
    assert {name: observer.pushes[name] for name in unhandled} == dict.fromkeys(unhandled, 0)
    # The reply's latency needs its first token and its first audio, and no more of them.
    streamed = ("TTSAudioRawFrame", "LLMTextFrame")
    assert {name: observer.pushes[name] for name in streamed} == dict.fromkeys(streamed, 1)
    assert observer.pushes["TTSTextFrame"] > 0
    assert observer.pushes["TranscriptionFrame"] > 0
    ended = backend.call_ended()
    assert [turn["content"] for turn in ended["transcript"]] == ["Hello.", "Hi there."]
    assert ended["recordingSampleRate"] == 16000


async def test_an_unwanted_event_is_never_queued_however_it_is_put() -> None:
    from pipecat_roark.observer._pipecat_compat import keep_out_of_queue

    @dataclass
    class Processed:
        frame: object

    @dataclass
    class Pushed:
        frame: object
        first_push: bool = True  # as on 1.x, which hands over first pushes only

    judged: list[type] = []

    def judge(frame_class: type) -> bool:
        judged.append(frame_class)
        return frame_class is str

    queue: asyncio.Queue[object] = asyncio.Queue()
    keep_out_of_queue(queue, events=(Processed,), pushes=Pushed, wanted={}, judge=judge)
    events = [Pushed("a"), Processed("b"), Pushed(1), Pushed("c"), Pushed(2), "d"]
    for event in events[:4]:
        await queue.put(event)  # as Pipecat puts events, awaited
    for event in events[4:]:
        queue.put_nowait(event)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [Pushed("a"), Pushed("c"), "d"]
    assert judged == [str, int]  # once per frame class

    def broken(frame_class: type) -> bool:
        raise RuntimeError("a handler table that fails")

    queue = asyncio.Queue()
    keep_out_of_queue(queue, events=(Processed,), pushes=Pushed, wanted={}, judge=broken)
    await queue.put(Pushed(1))  # the push goes on, and the event is kept for the observer
    queue.put_nowait(Pushed(2))
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [Pushed(1), Pushed(2)]


async def test_a_repeated_hop_is_kept_out_where_pipecat_hands_over_every_hop() -> None:
    from pipecat_roark.observer._pipecat_compat import keep_out_of_queue

    @dataclass
    class Frame:
        id: int
        wanted: bool = True

    @dataclass
    class Pushed:  # as on 0.0.x: no first_push, every hop is handed over
        frame: Frame

    asked: list[int] = []

    class Gate:
        """Lets one frame through per opening, like a reply's first streamed frame."""

        def __init__(self) -> None:
            self.open = True

        def __bool__(self) -> bool:
            asked.append(1)
            passed, self.open = self.open, False
            return passed

    gate = Gate()

    class Streamed(Frame):
        pass

    def judge(frame_class: type) -> object:
        return gate if frame_class is Streamed else True

    queue: asyncio.Queue[object] = asyncio.Queue()
    keep_out_of_queue(queue, events=(), pushes=Pushed, wanted={}, judge=judge)
    first, second, streamed = Frame(1), Frame(2), Streamed(3)
    hops = [Pushed(first), Pushed(first), Pushed(second), Pushed(first), Pushed(second)]
    hops += [Pushed(streamed), Pushed(streamed), Pushed(Streamed(4))]
    for hop in hops:
        await queue.put(hop)
    gate.open = True  # reopened: a repeated hop of a frame it turned away stays away
    queue.put_nowait(Pushed(Streamed(4)))
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert got == [Pushed(first), Pushed(second), Pushed(streamed)]
    assert len(asked) == 2  # once per first push of a gated frame, never for a repeat
