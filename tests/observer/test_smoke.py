from __future__ import annotations

from pipecat.frames.frames import FunctionCallInProgressFrame, FunctionCallResultFrame

from pipecat_roark import RoarkObserver
from tests.support.backend import RecordingBackend
from tests.support.pipeline import CallScript, run_call


async def test_a_simple_call_reaches_the_backend(backend: RecordingBackend) -> None:
    observer = RoarkObserver(api_key="rk_test", agent_id="agent-1", base_url=backend.url)

    async def call(script: CallScript) -> None:
        await script.wait(0.2)
        await script.bot_says(["Hello,", "how", "can", "I", "help?"], 1.0)
        await script.user_says("book a table", 1.0)
        await script.push(
            FunctionCallInProgressFrame("book", "call_1", {"people": 2}),
            FunctionCallResultFrame("book", "call_1", {"people": 2}, {"ok": True}, None),
        )
        await script.bot_says(["Done."], 0.5)

    await run_call([observer], call, after_output=[observer.audio_processor])
    ended = backend.call_ended()
    print(ended)
    assert [t["role"] for t in ended["transcript"]] == ["assistant", "user", "assistant"]
