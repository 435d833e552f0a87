"""The hard cases of observing a Pipecat call, through a real PipelineTask and a real HTTP
backend.

Each is something a call observer gets wrong in a real pipeline (most of them learned, fix by
fix, by Roark's own observer, pipecat-roark 0.2.5); each test's docstring says what goes
wrong and what is sent instead. Where 0.2.5 is still wrong (a late STT final and
``agentSpokeFirst``, a failed chunk-upload-url), the test pins this observer's behaviour.
"""

from __future__ import annotations

import asyncio

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    StopFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_roark.observer.text import join_text_chunks
from tests.conftest import LogCapture
from tests.observer.helpers import (
    assert_protocol,
    channel,
    observer_for,
    roles_and_texts,
    speech_spans,
)
from tests.support.backend import RecordingBackend
from tests.support.pipeline import (
    RATE,
    CallScript,
    Capture,
    Passthrough,
    run_call,
    tone,
    transcription,
)

# -- one frame, many hops --------------------------------------------------------------------------


async def test_same_frame_observed_multiple_times_is_deduped(backend: RecordingBackend) -> None:
    """Pipecat reports a frame once per processor hop, so an observer sees the same
    text, transcription and tool frames several times; each must count once, not as
    "Hello!Hello!Hello!"."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("hi there", 0.5)
        await script.push(
            FunctionCallInProgressFrame("lookup", "call_1", {"q": "x"}),
            FunctionCallResultFrame("lookup", "call_1", {"q": "x"}, {"found": 1}, None),
        )
        await script.bot_says(["Hello!"], 0.5)

    # Four pass-through hops before the transport: every frame is seen at least 5 times.
    await run_call(
        [observer],
        call,
        processors=[Passthrough(), Passthrough()],
        after_output=[observer.audio_processor],
    )
    ended = backend.call_ended()
    assert roles_and_texts(ended) == [("user", "hi there"), ("assistant", "Hello!")]
    assert [(t["kind"], t["toolCallId"]) for t in ended["toolCalls"]] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    assert_protocol(backend)


# -- a transport that goes away without an EndFrame ------------------------------------------------


async def test_aflush_ends_a_call_whose_end_frame_never_comes(backend: RecordingBackend) -> None:
    """Some transports (SmallWebRTC, Pipecat Cloud) tear down without an EndFrame reaching
    the observers: ``aflush()`` from the disconnect handler ends the call, once, with its
    reason, and neither a second ``aflush()`` nor a later end frame adds a call-ended."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Welcome."], 0.5)
        await script.user_says("bye", 0.5)
        await script.wait(0.2)
        await observer.aflush(reason="client-disconnected")
        await observer.aflush(reason="again")

    await run_call([observer], call, after_output=[observer.audio_processor], end=CancelFrame())
    ended = backend.call_ended()  # exactly one, despite two aflush() and a CancelFrame
    assert ended["callEndedReason"] == "client-disconnected"
    assert roles_and_texts(ended) == [("assistant", "Welcome."), ("user", "bye")]
    assert len(backend.of("call-started")) == 1


async def test_double_flush_only_posts_once(backend: RecordingBackend) -> None:
    """Two ``aflush()`` calls at the same moment send one call-ended; the first reason wins."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("hello", 0.3)
        await script.wait(0.2)
        await asyncio.gather(observer.aflush(reason="first"), observer.aflush(reason="second"))

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert backend.call_ended()["callEndedReason"] == "first"


# -- sample 0 is the first audio frame, not the arming ---------------------------------------------


async def test_offset_anchor_deferred_to_first_audio_frame(backend: RecordingBackend) -> None:
    """Offsets counted from the moment recording was armed are inflated by the dead time
    before any audio: sample 0 is the first audio frame, and arming records nothing."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.wait(5.0)  # dead time: no audio at all yet
        await script.bot_says(["Hi."], 0.6)

    await run_call([observer], call, after_output=[observer.audio_processor], mic=False)
    (turn,) = backend.call_ended()["transcript"]
    assert turn["audioOffsetMs"] == 0
    assert 550 <= turn["endAudioOffsetMs"] <= 700


# -- turns are anchored at speech onset ------------------------------------------------------------


async def test_turns_are_anchored_to_speech_onset_not_to_text(backend: RecordingBackend) -> None:
    """A turn stamped when its STT final or TTS text arrives is late against the audio: a
    user turn starts at the VAD onset, an assistant turn at BotStartedSpeakingFrame."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.wait(0.5)
        # STT final a whole second after the user stopped.
        await script.user_says("where is my order", 1.0, stt_delay=1.0)
        await script.bot_says(["On", "its", "way."], 0.9)

    capture = await run_call([observer], call, after_output=[observer.audio_processor])
    ended = backend.call_ended()
    user, bot = ended["transcript"]
    pcm = backend.pcm()
    # A starved machine can cut one stretch of speech in two on the recording (part of its
    # audio came late): each side's speech runs from its first onset to its last end.
    user_spans, bot_spans = speech_spans(channel(pcm, 0)), speech_spans(channel(pcm, 1))
    user_speech = (user_spans[0][0], user_spans[-1][1])
    bot_speech = (bot_spans[0][0], bot_spans[-1][1])
    assert abs(user["audioOffsetMs"] - user_speech[0]) <= 40
    assert abs(user["endAudioOffsetMs"] - user_speech[1]) <= 40
    assert abs(bot["audioOffsetMs"] - bot_speech[0]) <= 60
    assert user["timestamp"] < bot["timestamp"]
    assert user["timestamp"] != capture.script.__class__.__name__  # type: ignore[attr-defined]
    assert user["timestamp"] != "2026-01-01T00:00:00+00:00"  # not the STT frame's own stamp


# -- a bot that speaks first -----------------------------------------------------------------------


async def test_bot_greeting_is_recorded_from_sample_zero(backend: RecordingBackend) -> None:
    """A bot that speaks first: a recorder armed late (from the observer's queue) misses the
    greeting. The default recorder arms itself as the StartFrame passes, so the greeting
    starts at offset 0 and ``agentSpokeFirst`` is true."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Thanks", "for", "calling."], 1.2)
        await script.user_says("hello", 0.5)

    await run_call([observer], call, after_output=[observer.audio_processor], mic=False)
    ended = backend.call_ended()
    assert ended["agentSpokeFirst"] is True
    assert ended["transcript"][0]["audioOffsetMs"] == 0
    spans = speech_spans(channel(backend.pcm(), 1))
    assert spans[0][0] <= 20
    assert 1150 <= spans[0][1] <= 1300


# -- every TranscriptionFrame is a final; interims are ignored -------------------------------------


async def test_interim_frames_ignored_final_segments_aggregated(
    backend: RecordingBackend,
) -> None:
    """Streaming STTs leave ``finalized=False`` on real finals, so every TranscriptionFrame
    is a final; interims are a separate class and ignored. The final segments of one
    utterance make one user turn."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.push(UserStartedSpeakingFrame())
        await script.push(InterimTranscriptionFrame("I want", "caller", "t"))
        await script.push(transcription("I want to book", finalized=False))
        await script.push(transcription("a flight to Paris", finalized=False))
        await script.wait(0.3)
        await script.bot_says(["Sure."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [
        ("user", "I want to book a flight to Paris"),
        ("assistant", "Sure."),
    ]


# -- a caller's own recorder that is already recording ---------------------------------------------


class CountingRecorder(AudioBufferProcessor):
    """The real AudioBufferProcessor, counting how often it is (re)started."""

    starts = 0

    async def start_recording(self) -> None:
        self.starts += 1
        await super().start_recording()


async def test_prearmed_byo_processor_is_not_rearmed(backend: RecordingBackend) -> None:
    """A caller's own recorder that is already recording is never armed again: re-arming
    wipes its buffers (the greeting) and shifts every offset."""
    recorder = CountingRecorder(num_channels=2, buffer_size=0, sample_rate=RATE)
    await recorder.start_recording()
    recorder.starts = 0
    observer = observer_for(backend, audio_buffer_processor=recorder)
    assert observer.audio_processor is recorder

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hello."], 0.5)

    await run_call([observer], call, after_output=[recorder])
    assert recorder.starts == 0
    assert len(backend.of("call-started")) == 1
    ended = backend.call_ended()
    assert ended["recordingNumChannels"] == 2
    assert speech_spans(channel(backend.pcm(), 1))


async def test_byo_processor_not_yet_recording_is_armed(backend: RecordingBackend) -> None:
    """A caller's own recorder that is not recording yet is started by the observer."""
    recorder = CountingRecorder(num_channels=2, buffer_size=0)
    observer = observer_for(backend, audio_buffer_processor=recorder)

    async def call(script: CallScript) -> None:
        await script.wait(0.5)
        await script.bot_says(["Hello."], 0.5)

    await run_call([observer], call, after_output=[recorder])
    assert recorder.starts == 1
    assert backend.call_ended()["recordingSampleRate"] == RATE


# -- back-to-back user turns -----------------------------------------------------------------------


async def test_back_to_back_user_turns_stay_apart(backend: RecordingBackend) -> None:
    """Two user turns with no bot reply between them stay two turns: each
    UserStartedSpeakingFrame closes the pending one."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("first question", 0.4)
        await script.wait(0.3)
        await script.user_says("second question", 0.4)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [
        ("user", "first question"),
        ("user", "second question"),
    ]


# -- every turn has an end -------------------------------------------------------------------------


async def test_every_turn_has_an_end_at_its_speech_offset(backend: RecordingBackend) -> None:
    """A turn with only a start edge makes readers assume it lasts until the next one, and
    the silence between turns disappears: every turn has its end, from the stopped-speaking
    edge even when the turn is written out later."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("one", 0.5)
        await script.wait(0.5)  # silence: the turn is flushed only when the bot starts
        await script.bot_says(["Two."], 0.5)
        await script.push(UserStartedSpeakingFrame())
        await script.push(transcription("three"))  # never stops: ends at the flush

    await run_call([observer], call, after_output=[observer.audio_processor])
    turns = backend.call_ended()["transcript"]
    assert len(turns) == 3
    for turn in turns:
        assert turn["endTimestamp"] >= turn["timestamp"]
        assert turn["endAudioOffsetMs"] >= turn["audioOffsetMs"]
    first, second, _ = turns
    # The end came from UserStoppedSpeakingFrame, not from the later flush.
    assert second["audioOffsetMs"] - first["endAudioOffsetMs"] >= 400


# -- the host cancels the pipeline while call-ended is being sent ----------------------------------


async def test_call_ended_survives_the_pipeline_being_cancelled_mid_post(
    backend: RecordingBackend,
) -> None:
    """The host cancels the pipeline task while call-ended is being sent: the send must not
    die with the task (the call would stay in progress with no transcript), and a later
    ``aflush()`` waits for that same send; exactly one call-ended arrives."""
    backend.faults["call-ended"] = lambda n: 1.0  # a slow answer
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("hello", 0.3)

    runner = asyncio.ensure_future(
        run_call([observer], call, after_output=[observer.audio_processor])
    )
    while backend.counts.get("call-ended", 0) == 0:
        await asyncio.sleep(0.01)
    runner.cancel()  # the host tears down while the POST is in flight
    with pytest.raises(asyncio.CancelledError):
        await runner
    await observer.aflush()  # waits for the same send; sends nothing new
    assert backend.call_ended()["transcript"][0]["content"] == "hello"
    assert backend.counts["call-ended"] == 1


# -- a call-ended that fails -----------------------------------------------------------------------


async def test_call_ended_send_that_fails_is_logged_once_and_the_call_finishes(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    """A call-ended the backend refuses (400) is logged once and counted as failed, and
    raises into nobody's code: the pipeline finishes normally."""
    backend.faults["call-ended"] = lambda n: 400
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("hello", 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    failures = logs.matching("call-ended of call")
    assert len(failures) == 1
    assert "HTTP 400" in failures[0]
    assert observer.delivery_stats["failed"] == 1


# -- interruptions keep only what was heard --------------------------------------------------------


async def _released_words(capture: Capture, count: int) -> None:
    while sum(isinstance(f, TTSTextFrame) for f in capture.frames) < count:
        await asyncio.sleep(0.005)


async def test_interrupted_turn_keeps_only_the_words_that_played(
    backend: RecordingBackend,
) -> None:
    """TTS hands over a whole answer's words seconds before they are played; when the caller
    interrupts, only the words the output transport released (the ones heard) are kept."""
    observer = observer_for(backend)
    after = Capture()
    words = ["No", "earlier", "slot.", "You", "are", "booked", "for", "two."]

    async def call(script: CallScript) -> None:
        await script.bot_says(words, 2.4, wait=False)
        await _released_words(after, 3)
        await script.push(InterruptionFrame())
        await script.user_says("hello?", 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor, after], speed=1.0)
    assert roles_and_texts(backend.call_ended()) == [
        ("assistant", "No earlier slot."),
        ("user", "hello?"),
    ]


async def test_words_cut_before_any_audio_record_no_turn(backend: RecordingBackend) -> None:
    """An answer interrupted before any of its audio played leaves no assistant turn at all."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        # The TTS has produced audio and words, and the caller cuts in before a word plays.
        await script.bot_says(["Let", "me", "check."], 3.0, wait=False)
        await script.wait(0.3)
        await script.push(InterruptionFrame())
        await script.user_says("stop", 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor], speed=1.0)
    assert roles_and_texts(backend.call_ended()) == [("user", "stop")]


async def test_an_unheard_turn_leaves_no_timing_for_the_next(backend: RecordingBackend) -> None:
    """An answer cut before it played leaves no start or stop edge behind for the next turn."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.push(BotStartedSpeakingFrame(), InterruptionFrame(), BotStoppedSpeakingFrame())
        await script.wait(1.0)
        await script.bot_says(["Later."], 0.4)

    await run_call([observer], call, after_output=[observer.audio_processor])
    (turn,) = backend.call_ended()["transcript"]
    (speech,) = speech_spans(channel(backend.pcm(), 1))
    assert abs(turn["audioOffsetMs"] - speech[0]) <= 60


# -- the end waits for the words still queued behind audio -----------------------------------------


@pytest.mark.parametrize("end", [EndFrame(), StopFrame()], ids=["end", "stop"])
async def test_the_call_ends_once_the_transport_has_played_out(
    backend: RecordingBackend, end: Frame
) -> None:
    """An EndFrame or StopFrame passes the observer while the last words are still queued
    behind audio: the call ends only once the output transport has passed the end frame on,
    so the last words are recorded whole."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Thanks,", "goodbye", "now."], 1.5, wait=False)

    await run_call([observer], call, after_output=[observer.audio_processor], end=end)
    ended = backend.call_ended()
    assert roles_and_texts(ended) == [("assistant", "Thanks, goodbye now.")]
    assert ended["callEndedReason"] == ("unknown" if isinstance(end, StopFrame) else "agent-ended")


async def test_a_cancel_frame_ends_the_call_at_once(backend: RecordingBackend) -> None:
    """A CancelFrame ends the call at once, without waiting for the transport."""
    observer = observer_for(backend)
    after = Capture()

    async def call(script: CallScript) -> None:
        await script.bot_says(["One", "two", "three", "four", "five", "six."], 3.0, wait=False)
        await _released_words(after, 2)

    await run_call(
        [observer],
        call,
        after_output=[observer.audio_processor, after],
        end=CancelFrame(reason="user hung up"),
        speed=1.0,
    )
    ended = backend.call_ended()
    assert ended["callEndedReason"] == "user hung up"
    (turn,) = ended["transcript"]
    assert turn["content"].startswith("One two")
    assert "six." not in turn["content"]


# -- no output transport ---------------------------------------------------------------------------


async def test_without_an_output_transport_the_generated_words_are_kept(
    backend: RecordingBackend,
) -> None:
    """A pipeline without an output transport has nobody to say which words played, so the
    generated words are kept (a backend cannot tell this from a complete answer)."""
    from pipecat.pipeline.pipeline import Pipeline

    from tests.support.pipeline import PipelineParams, PipelineRunner, PipelineTask

    observer = observer_for(backend)
    task = PipelineTask(
        Pipeline([Passthrough(), Passthrough()]),
        params=PipelineParams(),
        observers=[observer],
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    for word in ["It", "will", "arrive", "Friday."]:
        await task.queue_frame(TTSTextFrame(word, "word"))
    await task.queue_frame(InterruptionFrame())
    await task.queue_frame(EndFrame())
    await PipelineRunner(handle_sigint=False).run(task)
    ended = backend.call_ended()
    assert roles_and_texts(ended) == [("assistant", "It will arrive Friday.")]
    assert "recordingSampleRate" not in ended


# -- the recording's tail chunk --------------------------------------------------------------------


async def test_call_ended_waits_for_the_recordings_final_chunk(backend: RecordingBackend) -> None:
    """The recorder hands its last, short chunk to handlers Pipecat runs as background tasks
    when recording stops: the observer waits for them and uploads that tail before
    call-ended, or the recording ends up to a chunk short."""
    recorder = AudioBufferProcessor(num_channels=2, buffer_size=10**7, sample_rate=RATE)
    observer = observer_for(backend, audio_buffer_processor=recorder)

    async def call(script: CallScript) -> None:
        # 800 buffered stereo frames, nothing else: one tail chunk of 800 x 2 x 2 bytes.
        await script.push(InputAudioRawFrame(tone(800 / RATE), RATE, 1))
        await script.wait(0.2)

    await run_call([observer], call, after_output=[recorder], mic=False)
    uploads = backend.of("upload")
    assert [len(u.body) for u in uploads] == [3200]
    order = [r.kind for r in backend.requests]
    assert order.index("upload") < order.index("call-ended")


async def test_a_hung_audio_handler_is_abandoned_not_cancelled(
    backend: RecordingBackend, logs: LogCapture
) -> None:
    """An audio handler that never returns is left behind after the deadline (not cancelled),
    and call-ended is still sent."""
    recorder = AudioBufferProcessor(num_channels=2, buffer_size=10**7, sample_rate=RATE)
    release = asyncio.Event()
    hung: list[asyncio.Task[object] | None] = []

    async def never_returns(*_: object) -> None:
        hung.append(asyncio.current_task())
        await release.wait()

    recorder.add_event_handler("on_audio_data", never_returns)
    observer = observer_for(backend, audio_buffer_processor=recorder, flush_timeout=1.0)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Bye."], 0.3)

    # Pipecat's own cleanup of the processor waits for its handlers, so the pipeline ends
    # only once the handler is released; call-ended must not wait for that.
    running = asyncio.ensure_future(run_call([observer], call, after_output=[recorder], mic=False))
    while not backend.of("call-ended"):
        await asyncio.sleep(0.02)
    assert backend.call_ended()["recordingSampleRate"] == RATE
    assert logs.matching("still running")
    assert hung
    assert hung[0] is not None
    assert not hung[0].done()
    release.set()
    await running


# -- realtime deltas carry their own spaces --------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "joined"),
    [
        (
            [
                ("Your", True),
                (" plan", True),
                (" is", True),
                (" Copper", True),
                ("line", True),
                (" Care", True),
                (", code", True),
                (" BW", True),
                ("-", True),
                ("88", True),
                (".", True),
            ],
            "Your plan is Copperline Care, code BW-88.",
        ),
        ([("Thanks,", False), ("that", False), ("helps.", False)], "Thanks, that helps."),
        ([("Hello", True), ("world", False)], "Hello world"),
        ([("Hello ", True), ("world", False)], "Hello world"),
        ([("ok", False), (" then", True)], "ok then"),
    ],
)
def test_join_text_chunks(parts: list[tuple[str, bool]], joined: str) -> None:
    """Realtime speech-to-speech services stream word pieces that carry their own spaces:
    spaced pieces join as they are, unspaced pieces get one space, and where the two meet a
    space is added only if neither side has one ("Copperline", not "Copper line")."""
    assert join_text_chunks(parts) == joined


def _spaced(text: str) -> TTSTextFrame:
    frame = TTSTextFrame(text, "word")
    frame.includes_inter_frame_spaces = True
    return frame


async def test_realtime_deltas_are_joined_as_spoken(backend: RecordingBackend) -> None:
    """Realtime deltas with their own spaces become the assistant's words as spoken."""
    observer = observer_for(backend)
    deltas = ["Your", " plan", " is", " Copper", "line", " Care", ", code", " BW", "-", "88", "."]

    async def call(script: CallScript) -> None:
        frames: list[Frame] = []
        for delta in deltas:
            frames += [_spaced(delta), _tts_audio(0.05)]
        await script.push(*frames, _tts_stopped())
        await script.wait(1.0)
        await script.bot_says(["Thanks,", "that", "helps."], 0.4)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [
        ("assistant", "Your plan is Copperline Care, code BW-88."),
        ("assistant", "Thanks, that helps."),
    ]


async def test_spaced_user_transcript_deltas_are_joined_as_spoken(
    backend: RecordingBackend,
) -> None:
    """The same joining rule holds for the user's transcript pieces."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.push(UserStartedSpeakingFrame())
        for delta in ["My", " code", " is", " BW", "-", "88"]:
            frame = transcription(delta)
            frame.includes_inter_frame_spaces = True
            await script.push(frame)
        await script.wait(0.2)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [("user", "My code is BW-88")]


def _tts_audio(seconds: float) -> Frame:
    from pipecat.frames.frames import TTSAudioRawFrame

    return TTSAudioRawFrame(tone(seconds, freq=220.0), RATE, 1)


def _tts_stopped() -> Frame:
    from pipecat.frames.frames import TTSStoppedFrame

    return TTSStoppedFrame()


# -- broadcast tool calls --------------------------------------------------------------------------


class Broadcaster(FrameProcessor):
    """Broadcasts tool-call frames both ways, as Pipecat's LLM services do."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, FunctionCallInProgressFrame):
            await self.broadcast_frame(
                FunctionCallInProgressFrame,
                function_name=frame.function_name,
                tool_call_id=frame.tool_call_id,
                arguments=frame.arguments,
            )
        elif isinstance(frame, FunctionCallResultFrame):
            await self.broadcast_frame(
                FunctionCallResultFrame,
                function_name=frame.function_name,
                tool_call_id=frame.tool_call_id,
                arguments=frame.arguments,
                result=frame.result,
                run_llm=None,
            )
        else:
            await self.push_frame(frame, direction)


async def test_a_broadcast_tool_call_is_recorded_once(backend: RecordingBackend) -> None:
    """Pipecat broadcasts tool-call and result frames both ways, as two frame objects linked
    by ``broadcast_sibling_id``, each seen at several hops: one call and one result remain."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.push(
            FunctionCallInProgressFrame("lookup", "call_1", '{"q":"x"}'),
            FunctionCallResultFrame("lookup", "call_1", '{"q":"x"}', "found", None),
        )
        await script.wait(0.3)

    await run_call(
        [observer],
        call,
        processors=[Passthrough(), Broadcaster(), Passthrough()],
        after_output=[observer.audio_processor],
    )
    tools = backend.call_ended()["toolCalls"]
    assert [(t["kind"], t["toolCallId"]) for t in tools] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    assert tools[0]["arguments"] == '{"q":"x"}'
    assert tools[1]["content"] == "found"


async def test_a_tool_call_id_is_invoked_once_without_broadcast_links(
    backend: RecordingBackend,
) -> None:
    """An older Pipecat broadcasts without sibling links: invocations are still kept once per
    ``toolCallId``."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        # Two separate frame objects for one invocation, with no sibling link.
        await script.push(
            FunctionCallInProgressFrame("lookup", "call_7", {"q": 1}),
            FunctionCallInProgressFrame("lookup", "call_7", {"q": 1}),
            FunctionCallResultFrame("lookup", "call_7", {"q": 1}, [1, 2], None),
        )
        await script.wait(0.2)

    await run_call([observer], call, after_output=[observer.audio_processor])
    tools = backend.call_ended()["toolCalls"]
    assert [t["kind"] for t in tools] == ["tool_call", "tool_result"]
    assert tools[0]["arguments"] == '{"q":1}'
    assert tools[1]["content"] == "[1,2]"


# -- edge cases found by running Roark's 0.2.5 in real pipelines -----------------------------------


async def test_a_late_stt_final_keeps_the_user_turn_before_the_reply(
    backend: RecordingBackend,
) -> None:
    """The caller stops, the bot starts answering, then the STT final arrives: the user turn
    keeps its onset, comes before the reply, and ``agentSpokeFirst`` is false (Roark's
    0.2.5 sends the turns in arrival order and says the agent spoke first)."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says(None, 0.5)  # VAD edges only, no final yet
        await script.bot_says(["Sure."], 0.5, wait=False)
        await script.wait(0.2)
        await script.push(transcription("book a table"))  # the final arrives during the reply
        await script.wait(0.6)

    await run_call([observer], call, after_output=[observer.audio_processor])
    ended = backend.call_ended()
    assert roles_and_texts(ended) == [("user", "book a table"), ("assistant", "Sure.")]
    assert ended["agentSpokeFirst"] is False
    user, bot = ended["transcript"]
    assert user["audioOffsetMs"] < bot["audioOffsetMs"]


async def test_without_vad_two_finals_make_one_user_turn(backend: RecordingBackend) -> None:
    """A pipeline without VAD frames: two STT finals with no bot speech between them make one
    user turn, without offsets."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.user_says("first thing", 0.3, vad=False)
        await script.user_says("second thing", 0.3, vad=False)
        await script.bot_says(["Noted."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [
        ("user", "first thing second thing"),
        ("assistant", "Noted."),
    ]


async def test_an_orphan_tool_result_is_sent_without_a_transcript(
    backend: RecordingBackend,
) -> None:
    """A tool result with no matching invocation and no result is still sent, with empty
    content; a call without turns has no transcript, and one without audio no recording
    fields."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.push(FunctionCallResultFrame("x", "c9", {}, None, None))
        await script.wait(0.1)

    await run_call([observer], call, after_output=[observer.audio_processor], mic=False)
    ended = backend.call_ended()
    assert [(t["kind"], t["toolCallId"], t["content"]) for t in ended["toolCalls"]] == [
        ("tool_result", "c9", "")
    ]
    assert "transcript" not in ended
    assert "agentSpokeFirst" not in ended
    assert "recordingSampleRate" not in ended  # no audio: no recording fields
    assert_protocol(backend)


async def test_aflush_before_the_pipeline_starts_sends_only_call_ended(
    backend: RecordingBackend,
) -> None:
    """``aflush()`` before the pipeline has started sends only call-ended, with no start time."""
    observer = observer_for(backend)
    await observer.aflush()
    ended = backend.call_ended()
    assert ended["callStartedAt"] is None
    assert ended["callEndedReason"] == "client-disconnected"
    assert backend.of("call-started") == []


async def test_a_presign_failure_is_retried_and_the_recording_stays_whole(
    backend: RecordingBackend,
) -> None:
    """A chunk-upload-url request that fails with a 502 is retried, so the recording has no gap
    (Roark's 0.2.5 does not retry it and leaves a hole)."""
    backend.faults["presign"] = lambda n: 502 if n == 1 else None
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["A", "long", "answer"], 6.0)  # more than one chunk

    await run_call([observer], call, after_output=[observer.audio_processor], speed=20.0)
    ended = backend.call_ended()
    assert ended["recordingSampleRate"] == RATE
    assert len(backend.chunks()) >= 2
    assert backend.pcm()  # every index present, in order


async def test_a_call_id_with_a_hash_is_sent_as_is(backend: RecordingBackend) -> None:
    """A WebRTC call id that contains ``#`` is sent as it is: it is opaque text."""
    observer = observer_for(backend, runner_args={"webrtc_connection": {"pc_id": "pc#42"}})
    assert observer.pipecat_call_id == "pc#42"

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hi."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert backend.call_ended()["pipecatCallId"] == "pc#42"
    assert {r.call_id for r in backend.of("upload")} == {"pc#42"}


async def test_audio_emitted_after_the_end_is_dropped(backend: RecordingBackend) -> None:
    """Audio the recorder emits after the call has ended is not uploaded."""
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Bye."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    chunks_before = len(backend.of("upload"))
    await observer._on_audio_data(observer.audio_processor, b"\x01\x00" * 64, RATE, 2)
    await asyncio.sleep(0.1)
    assert len(backend.of("upload")) == chunks_before
