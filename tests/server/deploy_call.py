"""One observed Pipecat call to a backend, in a process of its own.

``python -m tests.server.deploy_call BASE_URL API_KEY OUT_DIR``. Run apart from the tests so
that it trusts a certificate made at test time the way a deployed agent would, through
``SSL_CERT_FILE`` (aiohttp reads the trust store once, at import). It writes the PCM the
recorder produced to ``OUT_DIR/produced.pcm`` and the call id and delivery figures to
``OUT_DIR/result.json``; it prints ``started`` once the pipeline runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pipecat_roark import RoarkObserver
from tests.support.pipeline import CallScript, run_call


async def long_call(script: CallScript) -> None:
    """About 24 s of audio, so that the recording spans several chunks (~4 s each)."""
    print("started", flush=True)
    for turn in range(3):
        await script.bot_says(["How", "can", "I", "help", f"({turn})?"], 4.0)
        await script.user_says(f"question number {turn}", 4.0)


async def main(base_url: str, key: str, out: Path) -> None:
    observer = RoarkObserver(
        api_key=key, agent_id="deploy-bot", base_url=base_url, spool_dir=out / "spool"
    )
    produced: list[bytes] = []

    async def keep(_: object, audio: bytes, *__: object) -> None:
        produced.append(bytes(audio))

    observer.audio_processor.add_event_handler("on_audio_data", keep)
    await run_call([observer], long_call, after_output=[observer.audio_processor], speed=3.0)
    (out / "produced.pcm").write_bytes(b"".join(produced))
    result = {
        "pipecatCallId": observer.pipecat_call_id,
        "chunks": len(produced),
        "delivery": observer.delivery_stats,
    }
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
