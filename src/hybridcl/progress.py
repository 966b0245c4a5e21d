"""Progress of the long loops (training steps, generation batches, mined files), fitted to where it goes.

On a terminal (stdout and stderr both): a tqdm bar that clears itself when done. Anywhere else (a file,
CI, nohup, a Slurm log): no bar and no carriage return, but a line through logging at most every
PROGRESS_INTERVAL_S, e.g. `train task_specific s1 seed0: 120/250 steps (48%), 0.61 s/step, ~1 min 19 s
left`, and a final one with the wall time. Either way the log file gets a start line and that final line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence

from tqdm import tqdm

from hybridcl.logs import FILE_ONLY, duration

PROGRESS_INTERVAL_S = 30.0  # between two lines of one loop when there is no bar (tests may lower it)

logger = logging.getLogger(__name__)


def on_terminal() -> bool:
    """Whether a bar is readable: stderr (where it draws) and stdout (where the lines go) are terminals."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class Progress:
    """`total` units of work named `desc`, of which `initial` were done before (a build that continues);
    `enabled=False` (another process's share, a quiet caller) shows and logs nothing. A context manager:
    leaving it ends the bar and logs the final line."""

    def __init__(self, total: int, desc: str, unit: str = "step", enabled: bool = True, initial: int = 0):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.initial = self.done = initial
        self.note_text, self.closed = "", False
        self.start = self.last_line = time.perf_counter()
        self.bar = None
        if enabled and on_terminal():
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        if enabled:
            at = f" at {initial:,}" if initial else ""
            logger.info("%s: start%s, %s", desc, at, self._count(total), extra=FILE_ONLY)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.done < self.total and now - self.last_line >= PROGRESS_INTERVAL_S:
            self.last_line = now
            logger.info(self.line())

    def note(self, text: str) -> None:
        """Figures shown after the count (`loss 0.712`): on the bar, and at the end of the lines."""
        self.note_text = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if not self.enabled or self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        logger.info(self.final_line(), extra=FILE_ONLY if self.bar is not None else {})

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = elapsed / (self.done - self.initial) * (self.total - self.done)
        return (
            f"{self.desc}: {self.done:,}/{self._count(self.total)} ({self.done / self.total:.0%}), "
            f"{self._rate(elapsed)}, ~{duration(left)} left{self._note()}"
        )

    def final_line(self) -> str:
        elapsed = time.perf_counter() - self.start
        if self.done < self.total:
            return f"{self.desc}: stopped at {self.done:,}/{self._count(self.total)} after {duration(elapsed)}"
        now = f"{self._count(self.done - self.initial)} of {self.total:,}" if self.initial else self._count(self.done)
        return f"{self.desc}: {now} in {duration(elapsed)}, {self._rate(elapsed)}{self._note()}"

    def _rate(self, elapsed: float) -> str:
        """Over the units done since the start (not those of an earlier attempt)."""
        if self.done == self.initial or not elapsed:
            return "no rate yet"
        per_unit = elapsed / (self.done - self.initial)
        return f"{per_unit:.2f} s/{self.unit}" if per_unit >= 0.1 else f"{1 / per_unit:.1f} {plural(self.unit)}/s"

    def _count(self, n: int) -> str:
        return f"{n:,} {self.unit if n == 1 else plural(self.unit)}"

    def _note(self) -> str:
        return f", {self.note_text}" if self.note_text else ""


def track(items: Sequence, desc: str, unit: str = "step", enabled: bool = True) -> Iterator:
    """Each of `items`, counted as one unit of a Progress."""
    with Progress(len(items), desc, unit, enabled) as progress:
        for item in items:
            yield item
            progress.update()


def plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")
