"""Server logs go through loguru: readable lines, or JSON lines with ``--log-json``.

uvicorn logs with the standard library; its records are routed into the same sink so a
log collector sees one format. A log is read by more people than the server's data is, so
it holds no capability: the access log's URLs lose their signatures and login tokens, and
tracebacks are printed without the values of variables (loguru's ``diagnose``), which
would show transcripts and keys.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from loguru import logger

__all__ = ["CAPABILITY_PARAMETERS", "configure_logging", "redact_url"]

CAPABILITY_PARAMETERS = (
    "signature",
    "token",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
"""Query parameters whose value grants access by itself (signed URLs, login links)."""

_CAPABILITY = re.compile(
    r"([?&](?:" + "|".join(re.escape(name) for name in CAPABILITY_PARAMETERS) + r")=)[^&#]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``url`` with the value of every capability parameter replaced by ``REDACTED``."""
    return _CAPABILITY.sub(r"\1REDACTED", url)


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno

        def _from_the_std_record(entry: Any) -> None:
            entry.update(name=record.name, function=record.funcName, line=record.lineno)

        logger.patch(_from_the_std_record).opt(exception=record.exc_info).log(
            # The access log's lines hold whole URLs.
            level,
            redact_url(record.getMessage()),
        )


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json_lines, diagnose=False, backtrace=False)
    handler = _ToLoguru()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        std_logger = logging.getLogger(name)
        std_logger.handlers = [handler]
        std_logger.propagate = False
