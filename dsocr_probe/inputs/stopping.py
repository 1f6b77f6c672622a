"""The stop signal of one probe run: when ``--dsocr-timeout`` (or Ctrl-C) ends a probe, the work it
started in other processes ends with it, instead of going on behind the report.

The plugin gives each time-limited probe run a :class:`StopSignal` of its own, carried by the run's
context (``contextvars``), so work started late by a probe that already timed out never picks up the
signal of the probe after it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The probe this work belongs to was stopped; its result is no longer wanted."""


class StopSignal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self.fired = False

    def fire(self) -> None:
        """Stop the work. The hooks (ending worker processes, clearing a progress line) run now, in
        the caller's thread, so nothing the probe started is left running when this returns."""
        with self._lock:
            self.fired = True
            hooks, self._hooks = self._hooks, []
        for hook in reversed(hooks):
            hook()

    def check(self) -> None:
        if self.fired:
            raise Stopped("the probe was stopped")

    @contextlib.contextmanager
    def hooked(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run ``hook`` if the signal fires while the block runs (not after it)."""
        with self._lock:
            if self.fired:
                raise Stopped("the probe was stopped")
            self._hooks.append(hook)
        try:
            yield
        finally:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)


_CURRENT: contextvars.ContextVar[StopSignal | None] = contextvars.ContextVar("dsocr_probe_stop", default=None)


def current() -> StopSignal:
    """The signal of the probe run this code runs in; outside one, a signal that never fires."""
    return _CURRENT.get() or StopSignal()


def bound(signal: StopSignal, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` to be called (in any thread) with ``signal`` as its current signal."""
    context = contextvars.copy_context()
    context.run(_CURRENT.set, signal)
    return lambda: context.run(fn)
