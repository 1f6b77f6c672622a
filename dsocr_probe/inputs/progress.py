"""A progress line for passes over every row, shown only on runs that last more than a few seconds.

The line goes to a :class:`Display` the caller gives (:class:`TerminalLine`, pytest's terminal line, on a TTY
only); without one nothing is shown, so logs and CI output stay as they are.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Protocol

SHOW_AFTER_S = 3.0  # shorter runs finish before a progress line would help
EVERY_S = 0.5


class Display(Protocol):
    def show(self, text: str) -> None: ...

    def clear(self) -> None: ...


class Progress:
    """``label: done / total, N/s, ~T s left``, redrawn at most every :data:`EVERY_S` once
    :data:`SHOW_AFTER_S` have passed; :meth:`close` takes the line away."""

    def __init__(self, label: str, total: int, display: Display | None, *, show_after_s: float | None = None,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.done = label, total, 0
        self._display, self._clock = display, clock
        self._show_after = SHOW_AFTER_S if show_after_s is None else show_after_s
        self._every = EVERY_S if every_s is None else every_s
        self._start = clock()
        self._last: float | None = None
        self._lock = threading.Lock()  # close() may come from the thread that stops a timed-out probe
        self._closed = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._display is None:
            return
        now = self._clock()
        if now - self._start < self._show_after or (self._last is not None and now - self._last < self._every):
            return
        with self._lock:
            if self._closed:
                return
            self._last = now
            self._display.show(self.text(now))

    def text(self, now: float | None = None) -> str:
        elapsed = max((self._clock() if now is None else now) - self._start, 1e-9)
        rate = self.done / elapsed
        line = f"{self.label}: {self.done:_} / {self.total:_} ({rate:_.0f}/s"
        if 0 < self.done < self.total:
            line += f", ~{(self.total - self.done) / rate:_.0f} s left"
        return line.replace("_", " ") + ")"  # 1 000 000: thousands apart in every language

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._display is not None and self._last is not None:
                self._display.clear()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TerminalLine:
    """Progress drawn at the end of the line pytest's terminal is writing, and wiped off it afterwards,
    so the line (its colours too) stays as pytest wrote it. Only on a TTY that takes ANSI codes. pytest
    captures output while a probe runs, so the writes go around the capture, as its live logging does."""

    MIN_ROOM = 30  # narrower than this, the progress is not drawn

    def __init__(self, config):
        self._config = config
        self._column: int | None = None  # where pytest's text on the line ends

    def show(self, text: str) -> None:
        writer = self._writer()
        if writer is None:
            return
        line = writer._current_line
        room = writer.fullwidth - 1 - len(line) - 2
        if room < self.MIN_ROOM or (self._column is not None and self._column != len(line)):
            return
        self._column = len(line)
        self._write(writer, line, "  " + text[:room] + "\x1b[K")

    def clear(self, drawn_elsewhere: bool = False) -> None:
        """Wipe the progress; ``drawn_elsewhere``: also when another process (a probe's child) drew it."""
        writer = self._writer()
        if writer is None or (self._column is None and not drawn_elsewhere):
            return
        self._write(writer, writer._current_line, "\x1b[K")
        self._column = None

    def _write(self, writer, line: str, text: str) -> None:
        back = "\r" + (f"\x1b[{len(line)}C" if line else "")  # to the end of pytest's text
        capture = self._config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            writer.write(back + text, flush=True)
            writer._current_line = line  # what pytest counts as on the line, for its [ 70%] column

    def _writer(self):
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        writer = getattr(reporter, "_tw", None)
        if (writer is None or not getattr(reporter, "isatty", False) or not getattr(writer, "hasmarkup", False)
                or not isinstance(getattr(writer, "_current_line", None), str)):
            return None
        return writer
