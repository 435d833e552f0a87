"""Small line charts drawn on the server as SVG geometry: no JavaScript, no build step.

``line_chart`` maps daily values to points in a fixed view box; the template draws the
polylines. A day without calls has no point: the line joins the days around it rather than
dropping to zero, and every day that has a value gets a dot.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

__all__ = ["Chart", "Series", "line_chart"]

WIDTH = 640
HEIGHT = 160
_PAD_LEFT = 48
_PAD_RIGHT = 12
_PAD_TOP = 12
_PAD_BOTTOM = 24


class Series(BaseModel):
    name: str
    css: str
    segments: list[str]
    """SVG ``points`` strings (one line through the days that have a value)."""
    dots: list[tuple[float, float, str]]
    """(x, y, label) of every value, for a tooltip and for a lone day."""


class Chart(BaseModel):
    title: str
    width: int
    height: int
    top: float
    bottom: float
    left: float
    right: float
    maximum: float
    maximumLabel: str
    firstLabel: str
    lastLabel: str
    series: list[Series]
    empty: bool


def line_chart(
    title: str,
    labels: Sequence[str],
    lines: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    unit: str,
    scale: float = 1.0,
    digits: int = 2,
) -> Chart:
    """One chart of several lines over the same days; ``scale`` converts values for labels."""
    values = [v for _, _, series in lines for v in series if v is not None]
    maximum = max(values, default=0.0) or 1.0
    count = max(len(labels), 1)
    inner_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    inner_h = HEIGHT - _PAD_TOP - _PAD_BOTTOM

    def x(index: int) -> float:
        return round(_PAD_LEFT + (inner_w * index / (count - 1) if count > 1 else inner_w / 2), 1)

    def y(value: float) -> float:
        return round(_PAD_TOP + inner_h * (1 - value / maximum), 1)

    series: list[Series] = []
    for name, css, points in lines:
        segments: list[str] = []
        run: list[str] = []
        dots: list[tuple[float, float, str]] = []
        for index, value in enumerate(points):
            if value is None:
                continue  # a day without calls: the line joins its neighbours
            run.append(f"{x(index)},{y(value)}")
            day = labels[index] if index < len(labels) else ""
            dots.append((x(index), y(value), f"{day}: {value * scale:.{digits}f} {unit}"))
        if run:
            segments.append(" ".join(run))
        series.append(Series(name=name, css=css, segments=segments, dots=dots))
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        top=_PAD_TOP,
        bottom=HEIGHT - _PAD_BOTTOM,
        left=_PAD_LEFT,
        right=WIDTH - _PAD_RIGHT,
        maximum=maximum,
        maximumLabel=f"{maximum * scale:.{digits}f} {unit}",
        firstLabel=labels[0] if labels else "",
        lastLabel=labels[-1] if labels else "",
        series=series,
        empty=not values,
    )
