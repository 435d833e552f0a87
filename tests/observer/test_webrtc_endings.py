"""Every way a call ends, on Pipecat's SmallWebRTC transport with a real aiortc caller.

Both peers run in this process and talk over UDP on 127.0.0.1. The bot's disconnect
handler is the README's ("When the transport goes away"), taken from the README and run
as written. For each ending: the reason, exactly one call-ended, every chunk (the tail
included) uploaded before it, all the audio that reached the recorder in the recording,
and ``run()`` returning within a bound made of the transport's own timeouts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("aiortc") is None:
    if os.environ.get("ROARK_REQUIRE_SERVICES") == "1":
        raise ImportError("these tests need pipecat-ai[webrtc] (ROARK_REQUIRE_SERVICES=1)")
    pytest.skip("needs pipecat-ai[webrtc]", allow_module_level=True)

import aioice.ice
import aioice.stun
import numpy
import pipecat.frames.frames as pipecat_frames
from pipecat.frames.frames import EndFrame, Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from pipecat_roark import RoarkObserver
from tests.conftest import LogCapture
from tests.observer.helpers import assert_protocol, observer_for
from tests.support.backend import RecordingBackend
from tests.support.webrtc import (
    RATE,
    AudioMeter,
    Caller,
    Voice,
    allow_loopback,
    bot_params,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask

README = Path(__file__).resolve().parents[2] / "README.md"
GREETING_SECS = 1.0
GOODBYE_SECS = 2.0
SPEECH_WINDOW_SECS = 0.01

# A processor's request to end the call: Pipecat 1.x's EndWorkerFrame, 0.0.x's EndTaskFrame.
END_REQUEST: type[Frame] = getattr(
    pipecat_frames, "EndWorkerFrame", getattr(pipecat_frames, "EndTaskFrame", EndFrame)
)


async def end_frame(call: WebRTCCall) -> None:
    """The bot's code ends the call: an EndFrame queued on the task, behind the goodbye."""
    await call.task.queue_frame(EndFrame())


async def end_request(call: WebRTCCall) -> None:
    """A processor ends the call, behind the goodbye it pushed."""
    await call.voice.push_frame(END_REQUEST())


BOT_ENDS = {"EndFrame": end_frame, END_REQUEST.__name__: end_request}


def disconnect_handler_code() -> str:
    text = README.read_text()
    block = re.search(
        r"<!-- snippet: disconnect -->\n```python\n(.*?)```\n",
        text,
        re.S,
    )
    assert block, "the README has no disconnect block"
    return block.group(1)


@dataclass
class WebRTCCall:
    """One bot on SmallWebRTC, its observer and its caller; ``run`` plays a call through."""

    backend: RecordingBackend
    roark: RoarkObserver = field(init=False)
    caller: Caller = field(default_factory=Caller)
    voice: Voice = field(default_factory=Voice)
    connection: SmallWebRTCConnection = field(default_factory=SmallWebRTCConnection)
    ran_secs: float | None = None
    """How long ``run()`` took to return after the call's last event (``mark``)."""
    _marked: float | None = None

    def __post_init__(self) -> None:
        self.roark = observer_for(self.backend)
        self.params = bot_params()
        self.transport = SmallWebRTCTransport(webrtc_connection=self.connection, params=self.params)
        self.meter = AudioMeter(self.roark.audio_processor)
        pipeline = Pipeline(
            [
                self.transport.input(),
                self.voice,
                self.transport.output(),
                self.meter,
                self.roark.audio_processor,
            ]
        )
        self.task = PipelineTask(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
            observers=[self.roark],
            enable_rtvi=False,
            idle_timeout_secs=None,
        )
        self._connected = asyncio.Event()

        @self.transport.event_handler("on_client_connected")
        async def _connected(*_: Any) -> None:
            self._connected.set()

        # The README's handler, as written, with the names it uses.
        namespace = {"transport": self.transport, "roark": self.roark, "task": self.task}
        source = "def install():\n" + textwrap.indent(disconnect_handler_code(), "    ")
        exec(compile(source, str(README), "exec"), namespace)
        namespace["install"]()

    async def hang_up_once_heard(self, seconds: float) -> None:
        """The caller hangs up once they have heard ``seconds`` of the bot: the last event."""
        await self.caller.heard(seconds)
        await self.caller.hang_up()
        self.mark()

    def mark(self) -> None:
        """The call's last event: run() is timed from here."""
        self._marked = time.monotonic()

    async def run(self, script: Callable[[WebRTCCall], Awaitable[None]]) -> None:
        async def play() -> None:
            await self.caller.dial(self.connection)
            await self._connected.wait()
            await self.voice.say("Hello, how can I help?", GREETING_SECS)
            await self.caller.heard(GREETING_SECS)
            await script(self)

        runner = PipelineRunner(handle_sigint=False)
        await asyncio.gather(runner.run(self.task), play())
        assert self._marked is not None, "the script marks the call's last event"
        self.ran_secs = time.monotonic() - self._marked

    async def close(self) -> None:
        await self.caller.pc.close()


@pytest.fixture
async def call(
    backend: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WebRTCCall]:
    allow_loopback(monkeypatch)
    webrtc_call = WebRTCCall(backend)
    try:
        yield webrtc_call
    finally:
        await webrtc_call.close()


def assert_whole_call(call: WebRTCCall, backend: RecordingBackend, reason: str) -> None:
    ended = backend.call_ended()  # exactly one
    assert ended["callEndedReason"] == reason
    kinds = [r.kind for r in backend.requests]
    assert kinds.index("call-ended") == len(kinds) - 1, "every chunk is uploaded before it"
    assert kinds.count("call-started") == 1

    pcm = backend.pcm(call.roark.pipecat_call_id)  # chunks 0..n, none missing
    stereo = numpy.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    meter = call.meter
    # Every sample of audio that reached the recorder is in the recording, on its own
    # track, the tail chunk's included; whatever else the recording holds is silence the
    # recorder padded to keep the tracks aligned.
    assert int(numpy.count_nonzero(stereo[:, 0])) == meter.sound["user"]
    assert int(numpy.count_nonzero(stereo[:, 1])) == meter.sound["bot"]
    assert len(stereo) >= max(meter.samples.values())
    assert meter.samples["user"] > 0
    assert meter.samples["bot"] >= GREETING_SECS * RATE
    # The call lasts as long as its recording, to the 10 ms window speech is measured in.
    (summary,) = [m for m in ended["metrics"] if m["kind"] == "call_summary"]
    assert abs(summary["durationSeconds"] - len(stereo) / RATE) <= SPEECH_WINDOW_SECS
    assert_protocol(backend)


def write_timeout(call: WebRTCCall) -> float:
    """How long the output may take for one write before it gives up on the caller (Pipecat
    0.0.x never gives up: a stuck write hangs the call, and 1.x's default bounds it here)."""
    return float(getattr(call.params, "audio_out_write_timeout_secs", 10.0))


def assert_returned_within(call: WebRTCCall, logs: LogCapture, bound: float) -> None:
    """run() returned within ``bound`` of the call's last event, and no write timed out."""
    assert call.ran_secs is not None
    assert call.ran_secs < bound
    assert not logs.matching("writing audio to the transport"), "a write timed out"


# -- the bot ends the call -------------------------------------------------------------------------


@pytest.mark.parametrize("end", BOT_ENDS)
async def test_the_bot_ends_the_call(
    call: WebRTCCall, backend: RecordingBackend, logs: LogCapture, end: str
) -> None:
    async def goodbye(call: WebRTCCall) -> None:
        await call.voice.say("Goodbye!", GOODBYE_SECS, 660.0)
        await BOT_ENDS[end](call)
        await call.caller.heard(GREETING_SECS + GOODBYE_SECS)
        call.mark()

    await call.run(goodbye)
    assert_whole_call(call, backend, "agent-ended")
    assert call.meter.samples["bot"] >= (GREETING_SECS + GOODBYE_SECS) * RATE
    # The output plays its end silence, and no write waits for its timeout.
    assert_returned_within(call, logs, call.params.audio_out_end_silence_secs + write_timeout(call))


@pytest.mark.parametrize(
    ("end", "hang_up_after"),
    [
        ("EndFrame", GREETING_SECS + GOODBYE_SECS / 4),  # during the goodbye
        (END_REQUEST.__name__, GREETING_SECS + GOODBYE_SECS / 4),
        ("EndFrame", GREETING_SECS + GOODBYE_SECS),  # during the output's end silence
    ],
    ids=["EndFrame-goodbye", f"{END_REQUEST.__name__}-goodbye", "EndFrame-end-silence"],
)
async def test_the_bot_ends_the_call_and_the_caller_hangs_up_during_the_goodbye(
    call: WebRTCCall,
    backend: RecordingBackend,
    logs: LogCapture,
    end: str,
    hang_up_after: float,
) -> None:
    async def goodbye(call: WebRTCCall) -> None:
        await call.voice.say("Goodbye!", GOODBYE_SECS, 660.0)
        await BOT_ENDS[end](call)
        await call.hang_up_once_heard(hang_up_after)

    await call.run(goodbye)
    assert_whole_call(call, backend, "agent-ended")
    assert_returned_within(call, logs, write_timeout(call))


# -- the caller ends the call ---------------------------------------------------------------------


async def test_the_caller_hangs_up_mid_call(
    call: WebRTCCall, backend: RecordingBackend, logs: LogCapture
) -> None:
    async def hang_up(call: WebRTCCall) -> None:
        await call.voice.say("Let me look that up for you, it takes a moment.", 3.0)
        await call.hang_up_once_heard(GREETING_SECS + 1.0)

    await call.run(hang_up)
    assert_whole_call(call, backend, "client-disconnected")
    assert_returned_within(call, logs, write_timeout(call))


async def test_the_caller_vanishes_without_hanging_up(
    call: WebRTCCall, backend: RecordingBackend, logs: LogCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ICE consent checks every ~5 s, six failures in a row to give up: half a minute. The
    # checks run once a second here; the mechanism and the bound are the same.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)
    consent_expires = aioice.ice.CONSENT_FAILURES * (
        1.2 * aioice.ice.CONSENT_INTERVAL + aioice.stun.RETRY_RTO
    )

    async def vanish(call: WebRTCCall) -> None:
        await call.voice.say("Let me look that up for you.", 1.0)
        await call.caller.vanish()
        call.mark()

    await call.run(vanish)
    assert_whole_call(call, backend, "client-disconnected")
    assert_returned_within(call, logs, consent_expires + write_timeout(call))


# -- the host ends the call ------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "expected"), [(None, "agent-ended"), ("shutdown", "shutdown")])
async def test_the_host_cancels_the_task(
    call: WebRTCCall,
    backend: RecordingBackend,
    logs: LogCapture,
    reason: str | None,
    expected: str,
) -> None:
    async def cancel(call: WebRTCCall) -> None:
        await call.voice.say("One moment.", 1.0)
        await call.caller.heard(GREETING_SECS + 0.5)
        call.mark()
        await (call.task.cancel(reason=reason) if reason else call.task.cancel())

    await call.run(cancel)
    assert_whole_call(call, backend, expected)
    assert_returned_within(call, logs, write_timeout(call))
