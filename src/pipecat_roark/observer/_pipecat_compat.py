"""The few places where the observer reads Pipecat internals, each with a safe fallback.

Pipecat offers no public way to do these things, and each is needed for a call not to
lose data. All of them are read the same way on 0.0.x and
1.x; the test suite pins them on both lines, and if a future release renames one, the
fallback degrades a feature with one warning instead of breaking the call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "drain_queue",
    "handler_tasks",
    "is_recording",
    "keep_out_of_queue",
    "observer_queue",
    "tap_recorder",
    "task_observers",
    "track_buffer_lengths",
]


def _task_observer(processor: object) -> Any:
    """The pipeline task's proxy observer that feeds every observer from its own queue."""
    setup = getattr(processor, "_setup", None)  # 1.x: FrameProcessorSetup
    proxy = getattr(setup, "observer", None) if setup is not None else None
    if proxy is None:
        proxy = getattr(processor, "_observer", None)  # 0.x
    return proxy


def task_observers(processor: object) -> list[object] | None:
    """The observers attached to the task that runs ``processor``, or None if unknown."""
    observers = getattr(_task_observer(processor), "_observers", None)
    return observers if isinstance(observers, list) else None


def observer_queue(observer: object, processor: object) -> asyncio.Queue[Any] | None:
    """The queue from which Pipecat feeds ``observer`` its hooks.

    At shutdown Pipecat stops feeding an observer (1.x cancels its task) and drops the
    hops still queued; the observer drains this queue itself so the end of the call is
    not lost.
    """
    proxies = getattr(_task_observer(processor), "_proxies", None)
    if not isinstance(proxies, dict):
        return None
    queue = getattr(proxies.get(observer), "queue", None)
    return queue if isinstance(queue, asyncio.Queue) else None


def drain_queue(queue: asyncio.Queue[Any], pushed: type) -> tuple[list[Any], bool]:
    """Empty an observer's queue: the ``pushed`` events still in it, and whether the
    pipeline-started signal was among them."""
    hops: list[Any] = []
    started = False
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, pushed):
            hops.append(item)
        elif type(item).__name__ == "_PipelineStartedSignal":
            started = True
    return hops, started


def handler_tasks(processor: object, event_name: str) -> list[asyncio.Task[Any]] | None:
    """Pending tasks running ``event_name`` handlers, or None if they cannot be seen.

    Pipecat runs async event handlers as background tasks that only the processor's own
    ``cleanup()`` awaits, after the observers' cleanup: the recording's last chunk is in
    one of these.
    """
    tasks = getattr(processor, "_event_tasks", None)
    if tasks is None:
        return None
    return [task for name, task in list(tasks) if name == event_name and not task.done()]


def is_recording(processor: object) -> bool | None:
    value = getattr(processor, "_recording", None)
    return value if isinstance(value, bool) else None


def track_buffer_lengths(processor: object) -> tuple[int, int]:
    """Bytes buffered on the user and bot tracks since the last chunk."""
    user = getattr(processor, "_user_audio_buffer", b"")
    bot = getattr(processor, "_bot_audio_buffer", b"")
    return len(user), len(bot)


def tap_recorder(
    recorder: Any,
    *,
    process: Callable[[Any, Any, Callable[[Any, Any], Awaitable[None]]], Awaitable[None]],
    merged: Callable[[bytes], None],
    cleanup: Callable[[], Awaitable[None]],
) -> None:
    """Run ``process`` around every frame ``recorder`` processes, ``merged`` on every chunk
    it merges, and ``cleanup`` before its own cleanup.

    Set on the instance, so a user's own ``AudioBufferProcessor`` is tapped as it is, with
    no subclass: Pipecat calls ``process_frame``, ``merge_audio_buffers`` and ``cleanup``
    through the instance on both lines.
    """
    process_frame = recorder.process_frame
    merge_audio_buffers = recorder.merge_audio_buffers
    recorder_cleanup = recorder.cleanup

    async def tapped_process_frame(frame: Any, direction: Any) -> None:
        await process(frame, direction, process_frame)

    def tapped_merge_audio_buffers() -> bytes:
        audio: bytes = merge_audio_buffers()
        merged(audio)
        return audio

    async def tapped_cleanup() -> None:
        try:
            await cleanup()
        finally:
            await recorder_cleanup()

    recorder.process_frame = tapped_process_frame
    recorder.merge_audio_buffers = tapped_merge_audio_buffers
    recorder.cleanup = tapped_cleanup


def keep_out_of_queue(
    queue: asyncio.Queue[Any],
    *,
    events: tuple[type, ...],
    pushes: type,
    wanted: dict[type, Any],
    judge: Callable[[type], Any],
) -> None:
    """Keep the events an observer does not want out of its queue: every event of a kind in
    ``events``, every ``pushes`` event (``FramePushed``) of a frame class whose entry in
    ``wanted`` is falsy (``judge`` fills in a class the first time it is pushed), and on
    Pipecat 0.0.x every push of a frame after its first. An entry's truth is asked once per
    first push, so an entry may be a gate that changes its answer.

    Pipecat queues every event to every observer, which wants it or not: a
    ``FrameProcessed`` for every processor that handles every frame (a dozen per frame in a
    usual pipeline), every frame's push at every hop. Each is an awaited ``queue.put`` and a
    wake-up of the observer's task. An unwanted event now costs one check in one call, and
    the ``await`` Pipecat puts before it finishes at once, in C, on a future that is already
    done: no coroutine, no wake-up. Pipecat 1.x itself hands an observer created with
    ``observe_every_push=False`` only the first push of each frame (``FramePushed`` has a
    ``first_push`` field there); 0.0.x hands it every hop, so the filter keeps the repeated
    hops of a wanted frame out the same way, by the ids of the frames it let through.
    """
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    put = queue.put
    put_nowait = queue.put_nowait
    unbounded = queue.maxsize <= 0
    once = not hasattr(pushes, "first_push")
    passed = _Passed()
    seen = passed.ids

    def entry_for(frame_class: type) -> Any:
        try:
            return wanted[frame_class]
        except KeyError:
            try:
                verdict = wanted[frame_class] = judge(frame_class)
            except Exception:
                # Never raise into the push: queue it, the observer's guarded hook decides.
                return True
            return verdict

    def is_wanted(item: Any) -> bool:
        kind = type(item)
        if kind in events:
            return False
        if kind is pushes:
            frame = item.frame
            entry = entry_for(frame.__class__)
            if entry is False:
                return False
            if once:
                if frame.id in seen:
                    return False
                passed.add(frame.id)
            return bool(entry)
        return True

    def put_wanted(item: Any) -> Awaitable[None]:
        # is_wanted inlined for a class already judged: this runs for every event of every
        # frame, and the call it saves is a third of its cost.
        kind = type(item)
        if kind in events:
            return done
        if kind is pushes:
            frame = item.frame
            try:
                entry = wanted[frame.__class__]
            except KeyError:
                entry = entry_for(frame.__class__)
            if entry is False:
                return done
            if once:
                # A repeated hop is dropped before a gate is asked (and a frame a gate
                # turned away stays away): as on 1.x, where no repeated hop reaches it.
                frame_id = frame.id
                if frame_id in seen:
                    return done
                passed.add(frame_id)
                if not entry:
                    return done
            elif not entry:
                return done
        if unbounded:
            # Queue.put would call put_nowait, which is this filter again: a verdict that
            # changes as it is asked (the first of a reply's streamed frames) is asked once.
            put_nowait(item)
            return done
        return put(item)

    def put_wanted_nowait(item: Any) -> None:
        if is_wanted(item):
            put_nowait(item)

    queue.put = put_wanted  # type: ignore[method-assign,assignment]
    queue.put_nowait = put_wanted_nowait  # type: ignore[method-assign]


class _Passed:
    """The ids of the frames let through lately: bounded, since a frame's hops all come
    within moments of its first push."""

    __slots__ = ("_order", "ids")

    _CAPACITY = 2048

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, frame_id: int) -> None:
        self.ids.add(frame_id)
        self._order.append(frame_id)
        if len(self._order) > self._CAPACITY:
            self.ids.discard(self._order.popleft())
