"""One process of ``voice_pipeline_cost``: the demo's scripted call, un-paced, with one variant.

``python -m benchmarks.voice_worker '<VoiceSpec as JSON>'`` plays the call once to warm up
(model sessions, lazy imports), then ``calls`` times, and prints one JSON line per measured
call: the process's CPU time (user + sys of every thread) while the call played, and then
until the observer had sent the end of the call, and the call's length in audio seconds.

The demo's pipeline is this project's source (``src/pipecat_roark/demo``). Under
pipecat-roark 0.2.5 the module ``pipecat_roark`` is Roark's, without a demo, so the demo's
folder is loaded from the source tree under another package name; it only imports Pipecat
and itself.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import platform
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["DEMO_SOURCE", "VoiceSpec", "load_demo", "main"]

DEMO_SOURCE = Path(__file__).resolve().parent.parent / "src" / "pipecat_roark" / "demo"
_ALIAS = "voice_bench_demo"


@dataclass(frozen=True)
class VoiceSpec:
    """What a voice worker plays; ``variant`` is one of ``none``, ``ours``, ``roark-0.2.5``."""

    variant: str
    base_url: str = ""
    scenario: str = "booking"
    calls: int = 1
    warmup: bool = True
    metrics: bool = True
    call_prefix: str = "voice"


def load_demo(module: str) -> ModuleType:
    """``pipecat_roark.demo.<module>`` from the source tree, whichever ``pipecat_roark`` runs."""
    if _ALIAS not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _ALIAS, DEMO_SOURCE / "__init__.py", submodule_search_locations=[str(DEMO_SOURCE)]
        )
        assert spec is not None
        assert spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[_ALIAS] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{_ALIAS}.{module}")


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _play(spec: VoiceSpec, lines: Any, index: int, spool_dir: str) -> dict[str, Any]:
    from benchmarks.variants import observed

    call = load_demo("call")
    scenario = load_demo("scenarios").get_scenario(spec.scenario)
    setup = observed(
        spec.variant,
        call_id=f"{spec.call_prefix}-{index}",
        base_url=spec.base_url,
        metrics=spec.metrics,
        spool_dir=spool_dir,
    )
    started = _cpu()
    result = await call.play_call(
        scenario,
        lines=lines,
        speed=None,
        observers=setup.observers,
        recorder=setup.recorder,
    )
    in_call = _cpu() - started
    for observer in setup.observers:
        flush = getattr(observer, "aflush", None)
        if flush is not None:
            await flush()
    if setup.delivered is not None:
        await setup.delivered()
    record: dict[str, Any] = {
        "index": index,
        "call_id": setup.call_id,
        "audio_secs": result.duration_secs,
        "wall_secs": result.wall_secs,
        "cpu_in_call": in_call,
        "cpu_total": _cpu() - started,
        "bot_turns": len(result.bot_said),
        "tool_calls": len(result.tool_uses),
    }
    if setup.stats is not None:
        record["delivery"] = setup.stats()
    return record


async def _main(spec: VoiceSpec) -> None:
    call = load_demo("call")
    scenario = load_demo("scenarios").get_scenario(spec.scenario)
    # The caller's voice is synthesised before the call, as the demo does: not measured.
    lines = await asyncio.to_thread(call.render_caller_lines, scenario)
    # A spool of the worker's own: the machine's default one may hold other runs' records,
    # which the observer would replay while a measured call plays.
    with tempfile.TemporaryDirectory(prefix="roark-voice-spool-") as spool_dir:
        if spec.warmup:
            await _play(spec, lines, -1, spool_dir)
        await _measured_calls(spec, lines, spool_dir)


async def _measured_calls(spec: VoiceSpec, lines: Any, spool_dir: str) -> None:
    head = {
        "pipecat": metadata.version("pipecat-ai"),
        "python": platform.python_version(),
        "observer": _observer_version(spec.variant),
    }
    print(json.dumps(head), flush=True)
    for index in range(spec.calls):
        print(json.dumps(await _play(spec, lines, index, spool_dir)), flush=True)


_DISTRIBUTIONS = {"ours": "pipecat-call-analytics", "roark-0.2.5": "pipecat-roark"}


def _observer_version(variant: str) -> str | None:
    try:
        return metadata.version(_DISTRIBUTIONS[variant]) if variant in _DISTRIBUTIONS else None
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    spec = VoiceSpec(**json.loads((sys.argv[1:] if argv is None else argv)[0]))
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    warnings.simplefilter("ignore")
    asyncio.run(_main(spec))


if __name__ == "__main__":
    main()
