"""What the demo prints: each turn as it happens, a progress bar, and a summary at the end."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from .call import CallEvents, CallResult, ToolUse
from .scenarios import Scenario
from .scoring import word_error_rate
from .timeline import BotSpeech, CallTimeline, TimelineEvent

__all__ = ["CallProgress", "link_line", "print_summary", "response_latencies"]


class CallProgress(CallEvents):
    """Shows the call as it happens: who spoke, what was said or heard, and how fast."""

    def __init__(self, console: Console, scenario: Scenario) -> None:
        self._console = console
        self._scenario = scenario
        self._timeline: CallTimeline | None = None
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} caller lines"),
            TextColumn("[dim]call time {task.fields[call_secs]:5.1f} s"),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> CallProgress:
        self._progress.start()
        self._task = self._progress.add_task(
            self._scenario.name, total=len(self._scenario.caller), call_secs=0.0
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def call_starting(self, timeline: CallTimeline) -> None:
        self._timeline = timeline
        timeline.subscribe(self._on_timeline)

    def caller_heard(self, text: str) -> None:
        at = self._last_caller_start()
        self._line(at, "caller", "cyan", text or "[dim](nothing recognised)[/dim]", None)

    def bot_said(self, text: str, interrupted: bool) -> None:
        if not text:
            return
        speech = self._last_bot_speech()
        at = self._seconds(speech.start_sample) if speech else None
        latency = self._latency(speech) if speech else None
        shown = escape(text) + (" [yellow](cut off)[/yellow]" if interrupted else "")
        self._line(at, "bot", "green", shown, latency, escaped=True)

    def tool_called(self, use: ToolUse) -> None:
        arguments = ", ".join(f"{name}={value!r}" for name, value in use.arguments.items())
        returned = use.result
        if isinstance(returned, dict):
            # What the tool added: its arguments usually come back with the answer.
            returned = {k: v for k, v in returned.items() if use.arguments.get(k) != v}
        result = f" -> {returned}" if returned is not None else ""
        self._line(None, "tool", "magenta", f"{use.name}({arguments}){result}", None)

    def _on_timeline(self, event: TimelineEvent, timeline: CallTimeline) -> None:
        if self._task is None:
            return
        ends = [line.end_sample for line in timeline.caller_lines]
        ends += [speech.end_sample for speech in timeline.bot_speech]
        self._progress.update(
            self._task,
            completed=len(timeline.caller_lines),
            call_secs=timeline.seconds(max(ends, default=0)),
        )

    def _line(
        self,
        at: float | None,
        who: str,
        colour: str,
        text: str,
        latency: float | None,
        *,
        escaped: bool = False,
    ) -> None:
        when = f"{at:6.1f}s" if at is not None else " " * 7
        shown = text if escaped else escape(text)
        after = f"  [dim](+{latency:.2f} s)[/dim]" if latency is not None else ""
        self._console.print(f"[dim]{when}[/dim] [{colour}]{who:>6}[/{colour}]  {shown}{after}")

    def _seconds(self, sample: int) -> float:
        return self._timeline.seconds(sample) if self._timeline else 0.0

    def _last_caller_start(self) -> float | None:
        if self._timeline is None or not self._timeline.caller_lines:
            return None
        return self._seconds(self._timeline.caller_lines[-1].start_sample)

    def _last_bot_speech(self) -> BotSpeech | None:
        if self._timeline is None or not self._timeline.bot_speech:
            return None
        return self._timeline.bot_speech[-1]

    def _latency(self, speech: BotSpeech) -> float | None:
        if self._timeline is None:
            return None
        return response_latency(self._timeline, speech)


def response_latency(timeline: CallTimeline, speech: BotSpeech) -> float | None:
    """Seconds from the end of the caller's line to the bot's answer, if it answered one."""
    before = [line for line in timeline.caller_lines if line.end_sample <= speech.start_sample]
    if not before:
        return None
    line = before[-1]
    earlier_speech = [
        other
        for other in timeline.bot_speech
        if line.end_sample <= other.start_sample < speech.start_sample
    ]
    if earlier_speech:
        return None
    return timeline.seconds(speech.start_sample - line.end_sample)


def response_latencies(timeline: CallTimeline) -> list[float]:
    found = (response_latency(timeline, speech) for speech in timeline.bot_speech)
    return [latency for latency in found if latency is not None]


def print_summary(
    console: Console,
    result: CallResult,
    *,
    where: str,
    pipecat_call_id: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """The table a person reads after the call: turns, tools, recording, latencies, then
    ``where`` (how to see the call)."""
    timeline = result.timeline
    bot_turns = [text for text, _ in result.bot_said if text]
    latencies = response_latencies(timeline)
    wer = word_error_rate(result.scenario.caller_script, result.caller_heard)
    table = Table(title=f"Call summary: {result.scenario.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "Turns",
        f"{len(bot_turns) + len(result.caller_heard)} "
        f"({len(bot_turns)} bot, {len(result.caller_heard)} caller)",
    )
    tools = ", ".join(use.name for use in result.tool_uses) or "none"
    table.add_row("Tool calls", f"{len(result.tool_uses)} ({tools})")
    interrupted = sum(1 for _, cut in result.bot_said if cut)
    if interrupted:
        table.add_row("Interruptions", str(interrupted))
    table.add_row("Recording", f"{result.duration_secs:.1f} s")
    if latencies:
        table.add_row(
            "Response latency",
            f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
            f"({len(latencies)} {'reply' if len(latencies) == 1 else 'replies'})",
        )
    table.add_row("Recognition WER", f"{wer:.0%} (pocketsphinx vs. the script)")
    table.add_row("Played in", f"{result.wall_secs:.1f} s")
    if pipecat_call_id:
        table.add_row("Pipecat call id", pipecat_call_id)
    for note in notes:
        table.add_row("", note)
    console.print(table)
    # Outside the table, so a narrow terminal never cuts a link or a command short.
    console.print(where, soft_wrap=True, markup=False, highlight=False)


def link_line(call_link: str | None) -> str:
    """What to open while the backend is serving: the dashboard link or the REST resource."""
    if call_link is None:
        return "The backend does not list the call (yet)."
    if "/v1/call/" in call_link:
        return f"The call on the backend: {call_link}"
    return f"Open the call in the dashboard: {call_link}"
