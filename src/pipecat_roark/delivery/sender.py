"""The entry points the observer used before ``Delivery`` existed, kept until it takes one.

``Sender.for_running_loop(options)`` gives one ``Delivery`` per event loop, made with the
first caller's options: exactly the shared, first-caller-wins state ``Delivery`` replaces.
New code passes a ``Delivery`` (or uses ``default_delivery()``); this module goes away when
the observer takes a ``Delivery``.
"""

from __future__ import annotations

import asyncio
import weakref

from .delivery import DEFAULT_FLUSH_TIMEOUT, Delivery
from .lanes import CallLane
from .retry import DeliveryOptions, DeliveryStats

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "CallLane", "DeliveryOptions", "DeliveryStats", "Sender"]

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Delivery] = (
    weakref.WeakKeyDictionary()
)


class Sender:
    """Deprecated: pass a ``Delivery`` instead."""

    @staticmethod
    def for_running_loop(options: DeliveryOptions | None = None) -> Delivery:
        """The running loop's delivery, made with ``options`` if there is none yet."""
        loop = asyncio.get_running_loop()
        delivery = _by_loop.get(loop)
        if delivery is None:
            delivery = _by_loop[loop] = Delivery(options)
        return delivery

    @staticmethod
    def existing() -> Delivery | None:
        return _by_loop.get(asyncio.get_running_loop())
