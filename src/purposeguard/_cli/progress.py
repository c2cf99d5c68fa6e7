"""A tiny progress bar for the command line: no dependencies, stderr, terminals only."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_SPINNER = "|/-\\"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """A progress indicator on *stream* (stderr by default) that draws only on a terminal.

    With a *total* it is a bar that `update` advances; without one it is an
    activity indicator (a spinner and the elapsed time) that a background thread
    redraws while the work runs. Nothing is drawn when the stream is not a TTY, nor
    before *delay* seconds have passed, so short work, pipes, files and captured
    output stay clean; when something was drawn, `close` leaves one final line.
    Use it as a context manager:

    ```python
    with Progress("enrolling", total=len(batch)) as bar:
        for chunk in chunks:
            store.enrol_many(chunk)
            bar.update(len(chunk))
    ```

    Args:
        label: what the work is, shown before the bar.
        total: how many steps the work has; `None` for work of unknown length.
        stream: where to draw (default: `sys.stderr` at construction time).
        delay: seconds to wait before drawing anything.
        interval: the shortest time between two redraws, in seconds.
        enabled: force drawing on (`True`) or off (`False`); by default it draws
            only if the stream is a TTY.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        delay: float = 0.3,
        interval: float = 0.1,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._enabled = _is_tty(self._stream) if enabled is None else bool(enabled)
        self._delay = delay
        self._interval = interval
        self._start = time.monotonic()
        self._last_draw = float("-inf")
        self._width = 0
        self._drawn = False
        self._closed = False
        self._frame = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._enabled and total is None:
            self._thread = threading.Thread(
                target=self._spin, name="purposeguard-progress", daemon=True
            )
            self._thread.start()

    @property
    def enabled(self) -> bool:
        """Whether this indicator draws at all."""
        return self._enabled

    @property
    def elapsed(self) -> float:
        """Seconds since the indicator was created."""
        return time.monotonic() - self._start

    def update(self, steps: int = 1) -> None:
        """Record *steps* more steps done, and redraw if it is time to."""
        self.done += steps
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._start >= self._delay and now - self._last_draw >= self._interval:
            self._draw(now)

    def close(self) -> None:
        """Stop redrawing; if anything was drawn, draw the final state and end the line."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._drawn:
                self._write(self._line(final=True) + "\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- drawing -----------------------------------------------------------------------

    def _spin(self) -> None:
        if self._stop.wait(self._delay):
            return
        while True:
            self._draw(time.monotonic())
            if self._stop.wait(self._interval):
                return

    def _draw(self, now: float) -> None:
        with self._lock:
            if self._closed or not self._enabled:
                return
            self._last_draw = now
            self._frame += 1
            self._drawn = True
            self._write(self._line(final=False))

    def _line(self, *, final: bool) -> str:
        columns = shutil.get_terminal_size((80, 24)).columns
        elapsed = f"{self.elapsed:.1f}s"
        if self.total is None:
            state = "done" if final else _SPINNER[self._frame % len(_SPINNER)]
            line = f"{self.label} {state} {elapsed}"
        else:
            total = max(self.total, 0)
            done = min(self.done, total)
            fraction = done / total if total else 1.0
            counts = f"{done:,}/{total:,} {fraction:4.0%} {elapsed}"
            width = max(10, min(40, columns - len(self.label) - len(counts) - 5))
            filled = int(width * fraction)
            line = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {counts}"
        return line[: max(columns - 1, 1)]

    def _write(self, line: str) -> None:
        body = line.rstrip("\n")
        pad = " " * max(self._width - len(body), 0)
        self._width = len(body)
        try:
            self._stream.write("\r" + body + pad + line[len(body) :])
            self._stream.flush()
        except (OSError, ValueError):
            self._enabled = False  # the terminal went away: stop drawing, keep working
