"""The observer: Pipecat frames in, one call's requests out.

``RoarkObserver`` is imported lazily, as at the package root, so that the pure modules
here (transcript, timeline, metrics) load without Pipecat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .observer import RoarkObserver

__all__ = ["RoarkObserver"]


def __getattr__(name: str) -> Any:
    if name == "RoarkObserver":
        from .observer import RoarkObserver

        return RoarkObserver
    raise AttributeError(f"module 'pipecat_roark.observer' has no attribute {name!r}")
