"""A real SmallWebRTC call in one process: Pipecat's transport and an aiortc caller peer.

The two peers talk over UDP on 127.0.0.1 with host candidates only, so a call needs no
network. The caller streams a 20 ms microphone (a tone) and listens to the bot; it can
hang up (``pc.close()``: DTLS close and RTCP BYE reach the bot) or vanish (its sockets
are closed under it and nothing more is sent, as when a phone loses its network).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import numpy
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from pipecat_roark.observer import _pipecat_compat as compat
from tests.support.pipeline import tts_text

RATE = 16000
FRAME_SECS = 0.02
FRAME_SAMPLES = int(RATE * FRAME_SECS)
# Louder than this on the caller's side is the bot's voice; the transport's own end
# silence and its padding are exact zeros, and Opus leaves only a faint residue.
_HEARD = 1000
_NEVER_SECS = 120.0


def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gather host candidates on 127.0.0.1 only: aioice skips loopback addresses by default."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def tone(seconds: float, freq: float) -> bytes:
    count = int(RATE * seconds)
    return struct.pack(
        f"<{count}h", *(int(8000 * math.sin(2 * math.pi * freq * i / RATE)) for i in range(count))
    )


class Microphone(MediaStreamTrack):
    """The caller's microphone: a tone in 20 ms frames, paced by the wall clock."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frame = tone(FRAME_SECS, 220.0)
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._sent / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._frame)
        frame.sample_rate = RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, RATE)
        self._sent += FRAME_SAMPLES
        return frame


@dataclass
class Caller:
    """The aiortc peer on the caller's side."""

    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    heard_secs: float = 0.0
    """Seconds of the bot's voice the caller has heard."""
    _listening: asyncio.Task[None] | None = None
    _heard: asyncio.Event = field(default_factory=asyncio.Event)
    _until: float = math.inf

    async def dial(self, bot: SmallWebRTCConnection) -> None:
        self.pc.addTrack(Microphone())
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        await bot.initialize(sdp=offer.sdp, type=offer.type)
        answer = bot.get_answer()
        assert answer is not None
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
        )

    async def heard(self, seconds: float) -> None:
        """Returns once the caller has heard ``seconds`` of the bot's voice, give or take
        the one codec frame whose onset Opus softens."""
        self._until = seconds - FRAME_SECS
        self._heard.clear()
        if self.heard_secs < self._until:
            # A guard against a test that never ends, not a timing assertion.
            await asyncio.wait_for(self._heard.wait(), timeout=_NEVER_SECS)

    async def hang_up(self) -> None:
        await self.pc.close()
        if self._listening is not None:
            self._listening.cancel()

    async def vanish(self) -> None:
        """Drop off the network: the caller's sockets close and nothing more leaves them."""
        for connection in _ice_connections(self.pc):
            # The caller's own consent checks stop too, as a dead phone's would.
            if connection._query_consent_task is not None:
                connection._query_consent_task.cancel()
            for protocol in connection._protocols:
                if protocol.transport is not None:
                    protocol.transport.abort()
        if self._listening is not None:
            self._listening.cancel()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._listening = asyncio.ensure_future(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            # Packed samples, the channels interleaved; heard in 10 ms windows, so that a
            # tone's zero crossings count as voice.
            window = frame.sample_rate // 100 * len(frame.layout.channels)
            samples = abs(frame.to_ndarray().astype("int32")).reshape(-1)
            usable = len(samples) - len(samples) % window
            loud = int((samples[:usable].reshape(-1, window) > _HEARD).any(axis=1).sum())
            self.heard_secs += loud / 100
            if self.heard_secs >= self._until:
                self._heard.set()


def _ice_connections(pc: RTCPeerConnection) -> Iterator[Any]:
    """The aioice connections under a peer connection (one per transport; bundled: one)."""
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        ice = transceiver.sender.transport.transport  # DTLS transport -> ICE transport
        connection = ice.iceGatherer._connection
        if id(connection) not in seen:
            seen.add(id(connection))
            yield connection


def bot_params() -> TransportParams:
    return TransportParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        audio_in_sample_rate=RATE,
        audio_out_sample_rate=RATE,
    )


class Voice(FrameProcessor):
    """The bot's TTS: says a line (a tone and its words) when asked."""

    async def say(self, text: str, seconds: float, freq: float = 440.0) -> None:
        await self.push_frame(TTSStartedFrame())
        audio = tone(seconds, freq)
        step = FRAME_SAMPLES * 2
        for at in range(0, len(audio), step):
            await self.push_frame(TTSAudioRawFrame(audio[at : at + step], RATE, 1))
        await self.push_frame(tts_text(text))
        await self.push_frame(TTSStoppedFrame())

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class AudioMeter(FrameProcessor):
    """Counts, per track, the audio that reaches the recorder while it records: samples, and
    samples that are not silence (the recorder's padding is silence, so these count the
    audio itself wherever the recorder put it)."""

    def __init__(self, recorder: object) -> None:
        super().__init__()
        self._recorder = recorder
        self.samples = {"user": 0, "bot": 0}
        self.sound = {"user": 0, "bot": 0}

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, (InputAudioRawFrame, OutputAudioRawFrame)) and compat.is_recording(
            self._recorder
        ):
            assert frame.sample_rate == RATE
            assert frame.num_channels == 1
            track = "user" if isinstance(frame, InputAudioRawFrame) else "bot"
            pcm = numpy.frombuffer(frame.audio, dtype="<i2")
            self.samples[track] += len(pcm)
            self.sound[track] += int(numpy.count_nonzero(pcm))
        await self.push_frame(frame, direction)
