"""Construction: the public API, its environment variables and its errors."""

from __future__ import annotations

import uuid

import pytest
from pipecat.frames.frames import Frame, OutputAudioRawFrame
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_roark import RoarkObserver
from pipecat_roark.observer._pipecat_compat import track_buffer_lengths
from pipecat_roark.observer.recording import DEFAULT_CHUNK_BYTES, CallAudioRecorder
from tests.observer.helpers import observer_for, roles_and_texts
from tests.support.backend import RecordingBackend
from tests.support.pipeline import CallScript, run_call


def test_missing_api_key_names_the_argument_and_the_variable() -> None:
    with pytest.raises(ValueError, match=r"api_key=.*ROARK_API_KEY"):
        RoarkObserver(agent_id="a")


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROARK_API_KEY", "rk_live_env")
    assert RoarkObserver(agent_id="a")._api_key == "rk_live_env"
    assert RoarkObserver(agent_id="a", api_key="rk_live_arg")._api_key == "rk_live_arg"


def test_base_url_argument_then_environment_then_roark(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RoarkObserver(agent_id="a", api_key="k")._base_url == "https://api.roark.ai"
    monkeypatch.setenv("ROARK_BASE_URL", "http://127.0.0.1:9/")
    assert RoarkObserver(agent_id="a", api_key="k")._base_url == "http://127.0.0.1:9"
    observer = RoarkObserver(agent_id="a", api_key="k", base_url="https://self.example")
    assert observer._base_url == "https://self.example"


@pytest.mark.parametrize("url", ["api.roark.ai", "ftp://x", "http://"])
def test_a_base_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        RoarkObserver(agent_id="a", api_key="k", base_url=url)


@pytest.mark.parametrize("agent_id", ["", "   "])
def test_agent_id_is_required(agent_id: str) -> None:
    with pytest.raises(ValueError, match="agent_id"):
        RoarkObserver(agent_id=agent_id, api_key="k")


def test_an_explicit_call_id_wins_over_the_runner() -> None:
    runner_args = {"webrtc_connection": {"pc_id": "pc-1"}, "session_id": "s-1"}
    observer = RoarkObserver(
        agent_id="a", api_key="k", pipecat_call_id="mine", runner_args=runner_args
    )
    assert observer.pipecat_call_id == "mine"


def test_the_runner_gives_the_call_id_when_none_is_given() -> None:
    class Connection:
        pc_id = "pc-7"

    class Args:
        webrtc_connection = Connection()
        session_id = "s-7"

    assert RoarkObserver(agent_id="a", api_key="k", runner_args=Args()).pipecat_call_id == "pc-7"
    cloud = {"session_id": "s-8"}
    assert RoarkObserver(agent_id="a", api_key="k", runner_args=cloud).pipecat_call_id == "s-8"


def test_without_a_call_id_each_observer_gets_a_fresh_uuid() -> None:
    first = RoarkObserver(agent_id="a", api_key="k").pipecat_call_id
    second = RoarkObserver(agent_id="a", api_key="k").pipecat_call_id
    assert first != second
    assert uuid.UUID(first)


def test_the_call_id_is_read_only() -> None:
    observer = RoarkObserver(agent_id="a", api_key="k")
    with pytest.raises(AttributeError):
        observer.pipecat_call_id = "other"  # type: ignore[misc]


def test_a_blank_call_id_is_refused() -> None:
    with pytest.raises(ValueError, match="pipecat_call_id"):
        RoarkObserver(agent_id="a", api_key="k", pipecat_call_id=" ")


def test_the_default_recorder_is_stereo_with_256_kib_chunks() -> None:
    processor = RoarkObserver(agent_id="a", api_key="k").audio_processor
    assert isinstance(processor, CallAudioRecorder)
    assert processor.num_channels == 2
    assert processor._buffer_size * processor.num_channels == DEFAULT_CHUNK_BYTES


def test_a_callers_own_processor_is_used_as_given() -> None:
    mine = AudioBufferProcessor(num_channels=1, buffer_size=4096)
    observer = RoarkObserver(agent_id="a", api_key="k", audio_buffer_processor=mine)
    assert observer.audio_processor is mine


async def test_the_recording_adopts_the_pipelines_output_rate(backend: RecordingBackend) -> None:
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hi."], 0.3)

    await run_call(
        [observer],
        call,
        after_output=[observer.audio_processor],
        params={"audio_out_sample_rate": 24000},
    )
    assert backend.call_ended()["recordingSampleRate"] == 24000


async def test_agent_fields_go_on_call_started(backend: RecordingBackend) -> None:
    observer = observer_for(
        backend, agent_id="support-v3", agent_name="Support", agent_prompt="Be kind."
    )

    async def call(script: CallScript) -> None:
        await script.user_says("hi", 0.2)

    await run_call([observer], call, after_output=[observer.audio_processor])
    (started,) = backend.of("call-started")
    assert started.body["agentId"] == "support-v3"
    assert started.body["agentName"] == "Support"
    assert started.body["agentPrompt"] == "Be kind."
    assert started.body["pipecatCallId"] == observer.pipecat_call_id
    assert started.headers["x-roark-api-key"] == "rk_test_key"
    assert started.headers["Authorization"] == "Bearer rk_test_key"


async def test_answers_wrapped_in_data_are_understood(backend: RecordingBackend) -> None:
    backend.wrap_in_data = True
    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Wrapped."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert roles_and_texts(backend.call_ended()) == [("assistant", "Wrapped.")]
    assert backend.chunks()


def test_a_call_id_with_control_characters_is_refused_before_the_call() -> None:
    with pytest.raises(ValueError, match="control characters"):
        RoarkObserver(agent_id="a", api_key="k", pipecat_call_id="call\x00one")
    runner_args = {"webrtc_connection": {"pc_id": "pc\n1"}, "session_id": "s-9"}
    assert RoarkObserver(agent_id="a", api_key="k", runner_args=runner_args).pipecat_call_id == (
        "s-9"
    )


class _RecordedOnPush(FrameProcessor):
    """Before the recorder: after each bot audio frame it pushes, how much the bot track holds."""

    def __init__(self, recorder: CallAudioRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.growth: list[int] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, OutputAudioRawFrame):
            await self.push_frame(frame, direction)
            return
        before = track_buffer_lengths(self.recorder)[1]
        await self.push_frame(frame, direction)
        self.growth.append(track_buffer_lengths(self.recorder)[1] - before)


async def test_the_recorder_records_a_frame_as_it_is_pushed(backend: RecordingBackend) -> None:
    # No queue and no task switch per frame in the hottest hop of the call, and no played
    # audio left waiting in a queue that an interruption would clear.
    observer = observer_for(backend)
    recorder = observer.audio_processor
    assert isinstance(recorder, CallAudioRecorder)
    probe = _RecordedOnPush(recorder)

    async def call(script: CallScript) -> None:
        await script.bot_says(["Hello", "there."], 0.4)

    await run_call([observer], call, after_output=[probe, recorder])
    assert probe.growth
    assert all(grown > 0 for grown in probe.growth)


async def test_each_observer_keeps_its_own_delivery_options(backend: RecordingBackend) -> None:
    from pipecat_roark.delivery.delivery import Delivery, default_delivery
    from pipecat_roark.delivery.retry import DeliveryOptions

    quick = RoarkObserver(
        agent_id="a", api_key="k", delivery_options=DeliveryOptions(request_timeout=1.0)
    )
    patient = RoarkObserver(
        agent_id="b", api_key="k", delivery_options=DeliveryOptions(request_timeout=30.0)
    )
    assert quick.delivery.options.request_timeout == 1.0
    assert patient.delivery.options.request_timeout == 30.0
    shared = Delivery(DeliveryOptions(deadline=5.0))
    first = RoarkObserver(agent_id="c", api_key="k", delivery=shared)
    second = RoarkObserver(agent_id="d", api_key="k", delivery=shared)
    assert first.delivery is second.delivery is shared
    assert RoarkObserver(agent_id="e", api_key="k").delivery is default_delivery()
    assert default_delivery().options == DeliveryOptions()  # never another's arguments
    with pytest.raises(ValueError, match="not both"):
        RoarkObserver(
            agent_id="f", api_key="k", delivery=shared, delivery_options=DeliveryOptions()
        )
    for delivery in (quick.delivery, patient.delivery, shared):
        await delivery.aclose()
