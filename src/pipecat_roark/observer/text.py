"""Joining the pieces of a turn's text the way Pipecat joins them into the LLM context."""

from __future__ import annotations

__all__ = ["TextChunk", "join_text_chunks"]

# A piece of a turn's text, and whether it carries its own spacing (realtime
# speech-to-speech services stream deltas such as "Copper", "line", " Care").
TextChunk = tuple[str, bool]


def join_text_chunks(parts: list[TextChunk]) -> str:
    """Concatenate spaced chunks as they are; put one space between unspaced ones.

    Where the two kinds meet, a space is added only if neither side already has one, so
    "Copper" + "line" stays "Copperline" and "BW" + "-" + "88" stays "BW-88".
    """
    out: list[str] = []
    previous_spaced = False
    last_char = ""
    for text, spaced in parts:
        if not text:
            continue
        if (
            out
            and not (spaced and previous_spaced)
            and not last_char.isspace()
            and not text[0].isspace()
        ):
            out.append(" ")
        out.append(text)
        last_char = text[-1]
        previous_spaced = spaced
    return "".join(out).strip()
