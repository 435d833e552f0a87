"""Call analytics for Pipecat voice agents.

``RoarkObserver`` is imported lazily so that ``pipecat_roark.wire`` and the server can
be used without importing Pipecat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .observer.observer import RoarkObserver

__all__ = ["RoarkObserver", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "RoarkObserver":
        from .observer.observer import RoarkObserver

        return RoarkObserver
    raise AttributeError(f"module 'pipecat_roark' has no attribute {name!r}")
