"""``pipecat-roark demo``: the call, the observer that ships it, and the backend that keeps it.

The observer is wired exactly as in an application: ``RoarkObserver`` in the task's
observers and its ``audio_processor`` right after ``transport.output()``. It talks to the
backend over HTTP like any client, whether that is the server embedded here on 127.0.0.1
or another one given with ``--to``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from .backend import KEY_FILE, Backend, StoredCall, embedded_backend, find_call
from .call import SAMPLE_RATE, CallResult, play_call, render_caller_lines
from .progress import CallProgress, link_line, print_summary
from .scenarios import Scenario, get_scenario
from .tracing import SpanShipper
from .transports import LineRecording

__all__ = ["DemoOptions", "DemoOutcome", "how_to_stop", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """What ``pipecat-roark demo`` was asked to do."""

    scenario: str = "booking"
    speed: float | None = 1.0
    serve: bool = True
    to: str | None = None
    api_key: str | None = None
    data_dir: Path | None = None
    wav: Path | None = None
    tracing: bool = False
    """Pipecat's tracing on; the call's spans go to the backend's /v1/traces."""


@dataclass
class DemoOutcome:
    """The call as played, and where it was sent."""

    result: CallResult
    pipecat_call_id: str
    backend: Backend
    call_link: str | None
    delivered: bool
    spans_sent: int | None = None


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoOutcome:
    """Plays the scenario, ships it through the observer, prints the summary.

    With ``serve`` and the embedded backend, keeps serving afterwards until cancelled
    (Ctrl-C), so the call can be looked at.
    """
    console = console or Console()
    scenario = get_scenario(options.scenario)
    speed = "max" if options.speed is None else f"{options.speed:g}x"
    console.print(
        f"[bold]{scenario.agent.name}[/bold]: scenario [bold]{scenario.name}[/bold] "
        f"at speed {speed}. {scenario.description}"
    )
    with console.status("Synthesising the caller's lines..."):
        lines = await asyncio.to_thread(render_caller_lines, scenario)

    async with _backend(options) as backend:
        where = "embedded backend" if backend.embedded else "backend"
        console.print(f"Sending the call to the {where} at [bold]{backend.base_url}[/bold]\n")
        observer = _observer(scenario, backend)
        spans = SpanShipper(backend.base_url, backend.api_key) if options.tracing else None
        recording = LineRecording(SAMPLE_RATE) if options.wav else None
        with CallProgress(console, scenario) as progress:
            result = await play_call(
                scenario,
                lines=lines,
                speed=options.speed,
                observers=[observer],
                recorder=observer.audio_processor,
                recording=recording,
                events=progress,
                trace_conversation_id=observer.pipecat_call_id if spans else None,
            )
        await observer.aflush()
        delivered = _delivered(observer)
        traced = await spans.ship() if spans else None
        stored = await find_call(backend, observer.pipecat_call_id)
        call_link = stored.link if stored else None
        notes = [] if delivered else ["[red]some of the call could not be delivered[/red]"]
        if traced is not None:
            notes.append(f"{traced} trace spans sent to {backend.base_url}/v1/traces")
        if recording is not None and options.wav is not None:
            recording.write_wav(options.wav)
            notes.append(f"line recording written to {options.wav}")
        console.print()
        print_summary(
            console,
            result,
            where=_where(backend, stored, serving=options.serve),
            pipecat_call_id=observer.pipecat_call_id,
            notes=notes,
        )
        outcome = DemoOutcome(
            result, observer.pipecat_call_id, backend, call_link, delivered, traced
        )
        if backend.embedded and options.serve:
            console.print(f"\nServing on {backend.base_url}: {how_to_stop()}.")
            # Ctrl-C cancels this wait; the call itself has already succeeded or not.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
    return outcome


def how_to_stop() -> str:
    """Ctrl-C, unless this process was started with it ignored: a shell script's ``demo &``
    or ``nohup`` hands that on, and then only a signal that is not ignored ends the demo."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return f"Ctrl-C is ignored in this process (started in the background): kill {os.getpid()}"
    return "press Ctrl-C to stop"


@contextlib.asynccontextmanager
async def _backend(options: DemoOptions) -> AsyncIterator[Backend]:
    if options.to:
        if not options.api_key:
            raise ValueError("--to needs an API key (--api-key or ROARK_API_KEY)")
        yield Backend(base_url=options.to.rstrip("/"), api_key=options.api_key, embedded=False)
        return
    async with embedded_backend(options.data_dir) as backend:
        yield backend


def _where(backend: Backend, stored: StoredCall | None, *, serving: bool) -> str:
    """How to see the call: its link while the embedded server keeps serving (or on another
    backend); once the embedded server stops with the demo, where the call is kept and the
    command that serves it again, since any link to this run's port is dead by then."""
    if not backend.embedded or serving or backend.data_dir is None or stored is None:
        return link_line(stored.link if stored else None)
    data_dir = shlex.quote(str(backend.data_dir))
    return (
        f"The call is stored in {backend.data_dir} (the demo's server has stopped).\n"
        f"To see it, serve that folder:  pipecat-roark serve --data-dir {data_dir}\n"
        f"then open http://127.0.0.1:8787/calls/{stored.call_id} and log in with the key "
        f"in {shlex.quote(str(backend.data_dir / KEY_FILE))} "
        "(or add --no-auth to the serve command to skip the login)."
    )


def _observer(scenario: Scenario, backend: Backend) -> Any:
    from pipecat_roark import RoarkObserver

    return RoarkObserver(
        api_key=backend.api_key,
        agent_id=scenario.agent.id,
        agent_name=scenario.agent.name,
        agent_prompt=scenario.agent.prompt,
        base_url=backend.base_url,
    )


def _delivered(observer: Any) -> bool:
    """Whether every request of the call reached the backend."""
    stats = observer.delivery_stats
    return bool(stats.get("sent")) and not stats.get("failed") and not stats.get("dropped")
