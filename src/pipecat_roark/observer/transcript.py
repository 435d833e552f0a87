"""Transcript: a call's turns and tool calls, built from speech edges and text.

Plain Python with no Pipecat and no I/O, so every rule below is tested with plain
values. The observer translates frames into these calls; when the call ends,
``transcript()`` and ``tool_records()`` give the protocol's lists.

Times are kept as ``Moment``s (the frame that marked them) and resolved by the call's
timeline only when the call ends: by then the recording has placed every edge on its own
samples.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .text import TextChunk, join_text_chunks
from .timeline import Moment, Resolved, iso_utc

__all__ = ["Cut", "Placed", "Transcript", "Word"]


Resolver = Callable[[Moment], Resolved]


@dataclass(slots=True)
class _Turn:
    role: str
    start: Moment | None
    end: Moment | None = None
    parts: list[TextChunk] = field(default_factory=list)
    user_id: str | None = None
    language: str | None = None
    opened_by_speech: bool = False
    """A turn opened by a VAD edge keeps taking late STT finals until the next one."""
    speech_start: Moment | None = None
    speech_end: Moment | None = None
    """Where the VAD heard the speech begin and end; the turn's edges (when the turn was
    opened and released) come later, by the VAD's and the turn detector's delays."""
    generated: list[Word] = field(default_factory=list)
    """An assistant turn's words as the TTS produced them; ``parts`` holds the ones an
    output transport was seen releasing, when the observer sees every hop."""


# A word (or delta) the TTS produced: its text, whether it carries its own spacing, and the
# id of its frame, by which the recording tells whether it was played.
Word = tuple[str, bool, int | None]

Placed = Callable[[int], int | None]
"""Where on the recording the frame with this id passed the recorder (placed after the
output transport, which releases a word as its audio plays), in ms; None if it never did,
i.e. the caller never heard the word."""

# A played word belongs to the bot's turn whose span holds its place on the recording; one
# released just outside (a word's text trails or leads its audio a little) to the nearest.
_WORD_AFTER_TURN_MS = 1000
_WORD_BEFORE_TURN_MS = 500


@dataclass(frozen=True, slots=True)
class Cut:
    """The caller started speaking over the bot."""

    moment: Moment
    bot_turn_start: Moment | None
    played: tuple[TextChunk, ...]
    generated: tuple[Word, ...]
    turn: int
    """Index of the bot's turn it cut, among the closed turns."""


@dataclass(slots=True)
class _Tool:
    kind: str
    tool_call_id: str
    moment: Moment
    name: str = ""
    text: str = ""


class Transcript:
    """Turns and tool calls of one call, in the order the caller heard them."""

    def __init__(self) -> None:
        self._closed: list[tuple[_Turn, Moment]] = []
        self._user: _Turn | None = None
        self._bot_start: Moment | None = None
        self._played: list[TextChunk] = []
        self._generated: list[Word] = []
        self._first_text: Moment | None = None
        self._tools: list[_Tool] = []
        self._invoked: set[str] = set()
        self._answered: set[str] = set()
        self.cuts: list[Cut] = []
        self._cut_turn: _Turn | None = None
        self._vad_start: Moment | None = None
        self._words: list[Word] = []
        self.words_are_played = False
        """Set when an output transport was seen releasing words as their audio plays; until
        then (a pipeline without one) the words the TTS generated are all there is. Words
        placed on the recording (``Placed``, from the recorder) override both."""

    # -- user -----------------------------------------------------------------------------

    def user_started(self, moment: Moment) -> None:
        self._close_user(moment)
        self._user = _Turn("user", moment, opened_by_speech=True)
        self._user.speech_start, self._vad_start = self._vad_start, None

    def user_stopped(self, moment: Moment) -> None:
        if self._user is not None:
            self._user.end = moment

    def vad_started(self, moment: Moment) -> None:
        turn = self._user
        if turn is not None and turn.end is None and turn.speech_start is None:
            turn.speech_start = moment
        elif self._vad_start is None:
            self._vad_start = moment  # speech that the next user turn will open

    def vad_stopped(self, moment: Moment) -> None:
        turn = self._user
        if turn is not None and turn.end is None:
            turn.speech_end = moment
        else:
            self._vad_start = None  # speech that opened no turn (a cough, a noise)

    def user_text(
        self,
        text: str,
        spaced: bool,
        moment: Moment,
        *,
        user_id: str | None = None,
        language: str | None = None,
    ) -> None:
        if not text.strip():
            return
        turn = self._user
        if turn is None:
            turn = self._user = _Turn("user", None)
        if turn.start is None:
            turn.start = moment
        turn.parts.append((text if spaced else text.strip(), spaced))
        if user_id:
            turn.user_id = user_id
        if language:
            turn.language = language

    # -- assistant ------------------------------------------------------------------------

    def bot_started(self, moment: Moment) -> None:
        # Without VAD edges a user turn is whatever was transcribed before the bot spoke.
        if self._user is not None and not self._user.opened_by_speech:
            self._close_user(moment)
        self._cut_turn = None
        if self._bot_start is None:
            self._bot_start = moment

    def assistant_text(
        self, text: str, spaced: bool, moment: Moment, *, played: bool, frame_id: int | None = None
    ) -> None:
        if not text:
            return
        if played:
            self._played.append((text, spaced))
        else:
            self._generated.append((text, spaced, frame_id))
            self._words.append((text, spaced, frame_id))
        if self._first_text is None:
            self._first_text = moment

    def bot_stopped(self, moment: Moment) -> None:
        cut, self._cut_turn = self._cut_turn, None
        if cut is not None:
            # The turn a cut closed ends where its audio stopped: what was already on its
            # way to the caller when the interruption came still played.
            cut.end = moment
            return
        self._close_assistant(moment)

    def interrupted(self, moment: Moment) -> None:
        cut = (
            Cut(
                moment,
                self._bot_start or self._first_text,
                tuple(self._played),
                tuple(self._generated),
                len(self._closed),
            )
            if self._bot_start is not None or self._played
            else None
        )
        self._close_assistant(moment)
        if cut is not None:
            self.cuts.append(cut)
            self._cut_turn = self._closed[-1][0]

    def cut_words(
        self, cut: Cut, resolve: Resolver, place: Placed | None = None
    ) -> tuple[int, int]:
        """(words played, words generated) of the bot's turn a cut interrupted."""
        generated = _texts(cut.generated)
        if place is not None:
            owners = self._word_owners(resolve, place)
            played = [
                (text, spaced)
                for (text, spaced, _), owner in zip(self._words, owners, strict=True)
                if owner == cut.turn
            ]
            if cut.turn in owners:
                # The turn's words run from its first played word to the first word played
                # in a later turn: what the TTS made for it, heard or not. Taken from the
                # words' own order, so a next reply generated before this turn's end was
                # seen (an un-paced pipeline) does not count here.
                first = owners.index(cut.turn)
                last = next(
                    (
                        index
                        for index in range(first, len(owners))
                        if owners[index] is not None and owners[index] != cut.turn
                    ),
                    len(owners),
                )
                generated = _texts(self._words[first:last])
        else:
            played = list(cut.played) if self.words_are_played else generated
        return _word_count(played), _word_count(generated)

    # -- tools ----------------------------------------------------------------------------

    def tool_call(self, tool_call_id: str, name: str, arguments: str, moment: Moment) -> None:
        if tool_call_id:
            if tool_call_id in self._invoked:
                return
            self._invoked.add(tool_call_id)
        self._tools.append(_Tool("tool_call", tool_call_id, moment, name=name, text=arguments))

    def tool_result(self, tool_call_id: str, content: str, moment: Moment) -> None:
        if tool_call_id:
            if tool_call_id in self._answered:
                return
            self._answered.add(tool_call_id)
        self._tools.append(_Tool("tool_result", tool_call_id, moment, text=content))

    # -- the end --------------------------------------------------------------------------

    def close(self, moment: Moment) -> None:
        """Close whatever is open; ``moment`` ends turns whose speech offset never came."""
        self._close_user(moment)
        self._close_assistant(moment)

    def transcript(self, resolve: Resolver, place: Placed | None = None) -> list[dict[str, Any]]:
        """The closed turns as protocol dicts, ordered by speech onset."""
        return [entry for entry, _ in self.transcript_with_releases(resolve, place)]

    def transcript_with_releases(
        self, resolve: Resolver, place: Placed | None = None
    ) -> list[tuple[dict[str, Any], int | None]]:
        """Each turn, and for user turns the recording offset at which the turn was
        released (``UserStoppedSpeakingFrame``), for the end-of-turn delay.

        Assistant turns hold the words the caller heard: those placed on the recording
        within the turn's span (see ``Placed``), else those an output transport released
        while the turn was open, else (no output transport) those generated. A turn none
        of whose words were heard is left out. Ordered by speech onset: on the recording
        when every turn is placed on it, else by the pipeline clock."""
        placed = self._assistant_parts(resolve, place) if place is not None else None
        entries = []
        for seq, (turn, flushed) in enumerate(self._closed):
            parts = turn.parts
            if turn.role == "assistant":
                if placed is not None:
                    parts = placed.get(seq, [])
                elif not self.words_are_played:
                    parts = _texts(turn.generated)
                if not join_text_chunks(parts):
                    continue
            entries.append(
                (
                    _turn_dict(turn, parts, flushed, resolve),
                    _release(turn, resolve),
                    _clock_key(turn.start, flushed),
                    seq,
                )
            )
        if all("audioOffsetMs" in entry[0] for entry in entries):
            entries.sort(key=lambda item: (item[0]["audioOffsetMs"], item[2], item[3]))
        else:
            entries.sort(key=lambda item: (item[2], item[3]))
        return [(entry, release) for entry, release, _, _ in entries]

    def tool_records(self, resolve: Resolver) -> list[dict[str, Any]]:
        return [_tool_dict(tool, resolve) for tool in self._tools]

    # -- private --------------------------------------------------------------------------

    def _close_user(self, moment: Moment) -> None:
        turn, self._user = self._user, None
        if turn is not None and turn.parts and join_text_chunks(turn.parts):
            self._closed.append((turn, moment))

    def _assistant_parts(self, resolve: Resolver, place: Placed) -> dict[int, list[TextChunk]]:
        """The played words of each bot turn (by index among the closed turns)."""
        parts: dict[int, list[TextChunk]] = {}
        for (text, spaced, _), owner in zip(
            self._words, self._word_owners(resolve, place), strict=True
        ):
            if owner is not None:
                parts.setdefault(owner, []).append((text, spaced))
        return parts

    def _word_owners(self, resolve: Resolver, place: Placed) -> list[int | None]:
        """For each word the TTS made, the bot turn that played it (None: never played):
        the turn whose span on the recording holds the place the word was played at."""
        spans: list[tuple[int, int, int]] = []
        for seq, (turn, flushed) in enumerate(self._closed):
            if turn.role == "assistant":
                start = resolve(turn.start or flushed).offset_ms
                end = resolve(turn.end or flushed).offset_ms
                if start is not None and end is not None:
                    spans.append((start, max(start, end), seq))
        owner_of = _owner_finder(spans)
        owners: list[int | None] = []
        for _, _, frame_id in self._words:
            at = place(frame_id) if frame_id is not None else None
            owners.append(owner_of(at) if at is not None else None)
        return owners

    def _close_assistant(self, moment: Moment) -> None:
        if self._bot_start is not None or self._played or self._generated:
            start = self._bot_start or self._first_text or moment
            turn = _Turn("assistant", start, moment, list(self._played))
            turn.generated = list(self._generated)
            self._closed.append((turn, moment))
        # Words cut before any audio leave no turn, and no edges for the next one.
        self._bot_start = None
        self._first_text = None
        self._played.clear()
        self._generated.clear()


def _word_count(parts: list[TextChunk]) -> int:
    return len(join_text_chunks(parts).split())


def _texts(words: tuple[Word, ...] | list[Word]) -> list[TextChunk]:
    return [(text, spaced) for text, spaced, _ in words]


def _span_of(at: int, spans: list[tuple[int, int, int]]) -> int | None:
    """The turn whose span holds ``at``; else the one that ended last before it, or the one
    that starts first after it, when close enough."""
    for start, end, seq in spans:
        if start <= at <= end:
            return seq
    before = [(at - end, seq) for start, end, seq in spans if end < at]
    if before and min(before)[0] <= _WORD_AFTER_TURN_MS:
        return min(before)[1]
    after = [(start - at, seq) for start, end, seq in spans if start > at]
    if after and min(after)[0] <= _WORD_BEFORE_TURN_MS:
        return min(after)[1]
    return None


def _owner_finder(spans: list[tuple[int, int, int]]) -> Callable[[int], int | None]:
    """``_span_of`` over these spans, in logarithmic time when they follow one another.

    A call's bot turns do (each ends before the next starts), and an hour-long call has
    thousands of words and hundreds of turns: a scan per word took the end of such a call
    from milliseconds to a tenth of a second.
    """
    # In order: each ends before the next starts, or where it starts if that one is not empty
    # (so the ends strictly increase).
    ordered = all(
        end < start or (end == start and start < following_end)
        for (_, end, _), (start, following_end, _) in itertools.pairwise(spans)
    )
    if not ordered:
        return lambda at: _span_of(at, spans)
    starts = [start for start, _, _ in spans]

    def owner(at: int) -> int | None:
        index = bisect.bisect_right(starts, at) - 1
        if index > 0 and spans[index - 1][1] == at:
            return spans[index - 1][2]  # where two turns touch, the first holds it
        if index >= 0:
            _, end, seq = spans[index]
            if at - end <= _WORD_AFTER_TURN_MS:  # inside the turn, or just after it
                return seq
        if index + 1 < len(spans):
            start, _, seq = spans[index + 1]
            if start - at <= _WORD_BEFORE_TURN_MS:
                return seq
        return None

    return owner


def _clock_key(start: Moment | None, flushed: Moment) -> float:
    moment = start or flushed
    if moment.clock_ns is not None:
        return moment.clock_ns / 1e9
    return float("inf")


def _earliest(first: Resolved, second: Resolved | None) -> Resolved:
    if second is None:
        return first
    if first.offset_ms is not None and second.offset_ms is not None:
        return first if first.offset_ms <= second.offset_ms else second
    return first if first.wall <= second.wall else second


def _release(turn: _Turn, resolve: Resolver) -> int | None:
    if turn.role != "user" or turn.end is None:
        return None
    return resolve(turn.end).offset_ms


def _turn_dict(
    turn: _Turn, parts: list[TextChunk], flushed: Moment, resolve: Resolver
) -> dict[str, Any]:
    # The speech itself when the VAD placed it, else the turn's own edges.
    start = _earliest(
        resolve(turn.start or flushed), resolve(turn.speech_start) if turn.speech_start else None
    )
    end = resolve(turn.speech_end or turn.end or flushed)
    end_wall = max(end.wall, start.wall)
    entry: dict[str, Any] = {
        "role": turn.role,
        "content": join_text_chunks(parts),
        "timestamp": iso_utc(start.wall),
        "endTimestamp": iso_utc(end_wall),
    }
    if start.offset_ms is not None:
        entry["audioOffsetMs"] = start.offset_ms
        if end.offset_ms is not None:
            entry["endAudioOffsetMs"] = max(end.offset_ms, start.offset_ms)
    if turn.user_id:
        entry["userId"] = turn.user_id
    if turn.language:
        entry["language"] = turn.language
    return entry


def _tool_dict(tool: _Tool, resolve: Resolver) -> dict[str, Any]:
    when = resolve(tool.moment)
    entry: dict[str, Any] = {"kind": tool.kind, "toolCallId": tool.tool_call_id}
    if tool.kind == "tool_call":
        entry["name"] = tool.name
        entry["arguments"] = tool.text
    else:
        entry["content"] = tool.text
    entry["timestamp"] = iso_utc(when.wall)
    if when.offset_ms is not None:
        entry["audioOffsetMs"] = when.offset_ms
    return entry
