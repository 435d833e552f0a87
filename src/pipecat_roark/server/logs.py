"""Server logs go through loguru: readable lines, or JSON lines with ``--log-json``.

uvicorn logs with the standard library; its records are routed into the same sink so a
log collector sees one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from loguru import logger

__all__ = ["configure_logging"]


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno

        def _from_the_std_record(entry: Any) -> None:
            entry.update(name=record.name, function=record.funcName, line=record.lineno)

        logger.patch(_from_the_std_record).opt(exception=record.exc_info).log(
            level, record.getMessage()
        )


def configure_logging(*, json_lines: bool, level: str = "INFO") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json_lines)
    handler = _ToLoguru()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        std_logger = logging.getLogger(name)
        std_logger.handlers = [handler]
        std_logger.propagate = False
