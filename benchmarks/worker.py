"""One benchmark process: plays calls with one variant and prints what each cost.

The benchmark scripts start it with the interpreter of the venv the variant needs:
``python -m benchmarks.worker '<Spec as JSON>'``. After a warm-up call it prints one JSON
line with the versions it runs, then one per measured call (``CallRun`` fields, the call's
id, delivery counters, memory samples): ``Spec.calls`` of them, or with ``calls=0`` one for
every line it reads on stdin, so that the parent can interleave variants call by call.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any

__all__ = ["Spec", "main"]


@dataclass(frozen=True)
class Spec:
    """What a worker plays; ``variant`` is one of ``benchmarks.variants.VARIANTS``."""

    variant: str
    base_url: str = ""
    calls: int = 1
    minutes: float = 1.0
    speed: float = 30.0
    warmup_minutes: float = 0.1
    metrics: bool = True
    flush_timeout: float = 10.0
    spool_dir: str = ""
    call_prefix: str = "bench"
    memory: bool = False
    """Sample memory at every simulated minute (see ``benchmarks.memory``)."""
    catch_up: bool = False
    """At every simulated minute and before the EndFrame, wait until the pipeline, the
    observers and the observer's uploads have caught up (``benchmarks.call``)."""
    trace_from: int | None = None
    trace_to: int | None = None
    instructions_dir: str = ""
    """Set when the worker runs under callgrind (``benchmarks.callgrind``), which dumps
    there: each measured call then reports the instructions it executed."""


async def _play(spec: Spec, index: int) -> dict[str, Any]:
    from benchmarks.call import play_call
    from benchmarks.memory import MemorySampler
    from benchmarks.variants import observed

    setup = observed(
        spec.variant,
        call_id=f"{spec.call_prefix}-{index}",
        base_url=spec.base_url,
        metrics=spec.metrics,
        flush_timeout=spec.flush_timeout,
        spool_dir=spec.spool_dir,
    )
    sampler = (
        MemorySampler(int(spec.minutes), spec.trace_from, spec.trace_to) if spec.memory else None
    )
    run = await play_call(
        minutes=spec.minutes,
        speed=spec.speed,
        observers=setup.observers,
        recorder=setup.recorder,
        on_minute=sampler or (_each_minute if spec.catch_up else None),
        delivered=setup.delivered,
        drained=setup.drained if spec.catch_up else None,
    )
    result: dict[str, Any] = {**asdict(run), "call_id": setup.call_id, "index": index}
    if setup.stats is not None:
        result["delivery"] = setup.stats()
    if sampler is not None:
        result["memory"] = sampler.as_dict()
    return result


def _each_minute(minute: int) -> None:
    pass


async def _measured(spec: Spec, index: int) -> dict[str, Any]:
    if not spec.instructions_dir:
        return await _play(spec, index)
    from benchmarks.callgrind import Counter

    counter = Counter(spec.instructions_dir)
    counter.zero()
    result = await _play(spec, index)
    result["instructions"] = counter.dump()
    return result


async def _main(spec: Spec) -> None:
    if spec.warmup_minutes > 0:
        await _play(replace(spec, minutes=spec.warmup_minutes, memory=False), -1)
    head = {
        "pipecat": metadata.version("pipecat-ai"),
        "python": platform.python_version(),
        "observer": _observer_version(spec.variant),
    }
    print(json.dumps(head), flush=True)
    if spec.calls > 0:
        for index in range(spec.calls):
            print(json.dumps(await _measured(spec, index)), flush=True)
        return
    # On demand: one call per line read, until stdin closes.
    loop = asyncio.get_running_loop()
    index = 0
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps(await _measured(spec, index)), flush=True)
        index += 1


def _quiet() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    warnings.simplefilter("ignore")


# Both install the module ``pipecat_roark``, under different distribution names.
_DISTRIBUTIONS = {"ours": "pipecat-call-analytics", "roark-0.2.5": "pipecat-roark"}


def _observer_version(variant: str) -> str | None:
    if variant not in _DISTRIBUTIONS:
        return None
    try:
        return metadata.version(_DISTRIBUTIONS[variant])
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    spec = Spec(**json.loads((sys.argv[1:] if argv is None else argv)[0]))
    _quiet()
    asyncio.run(_main(spec))


if __name__ == "__main__":
    main()
