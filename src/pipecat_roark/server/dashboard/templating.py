"""Jinja2 with auto-escaping on, the display filters, and the headers every page gets."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..._version import __version__

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "clock", "page", "render"]

_NONE = "\u2013"  # an en dash stands for a value that is not known

TEMPLATE_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

# Scripts and styles come from this server only; nothing inline can run.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' {media}; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def clock(ms: float | int | None) -> str:
    """A recording offset as m:ss.s (h:mm:ss.s past an hour)."""
    if ms is None:
        return _NONE
    tenths = math.floor(float(ms) / 100 + 0.5)  # half up, as the page's script rounds
    seconds, tenth = divmod(tenths, 10)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minute:02d}:{second:02d}.{tenth}"
    return f"{minutes}:{second:02d}.{tenth}"


def _duration(ms: float | int | None) -> str:
    if ms is None:
        return _NONE
    seconds = round(float(ms) / 1000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minute:02d} m"
    if minutes:
        return f"{minutes} m {second:02d} s"
    return f"{second} s"


def _when(iso: str | None) -> str:
    if not iso:
        return _NONE
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None, digits: int = 2) -> str:
    return _NONE if value is None else f"{value:.{digits}f} s"


def _percent(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:.0f}%"


def _number(value: float | int | None) -> str:
    if value is None:
        return _NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".replace(",", "\u2009")
    return f"{int(value):,}".replace(",", "\u2009")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    clock=clock,
    duration=_duration,
    when=_when,
    seconds=_seconds,
    percent=_percent,
    number=_number,
    pretty_json=_pretty_json,
)
_env.globals["version"] = __version__


def render(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def page(
    template: str, *, status: int = 200, media_origin: str = "", **context: Any
) -> HTMLResponse:
    """A dashboard page with its security headers (CSP, no framing, no sniffing)."""
    response = HTMLResponse(render(template, **context), status_code=status)
    response.headers["content-security-policy"] = _CSP.format(media=media_origin).replace("  ", " ")
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["x-frame-options"] = "DENY"
    response.headers["cache-control"] = "no-store"
    return response
