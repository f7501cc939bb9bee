"""How far a batch of reports has got: a live bar on a terminal, plain log lines elsewhere.

On a terminal the bar shows the reports done, the time left (ETA) and the departments running,
and each report's status is printed above it as it finishes. Under cron or CI (no terminal) the
same news is one log line per report: which report, how it went, how many are done and still
running, and the time left.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import TextIO

from tqdm import tqdm

from kpilib.runner import Outcome

log = logging.getLogger("kpi")


class BatchProgress:
    """Follows a batch's reports as they start (`started`) and finish (`done`).

    Args:
        total: How many reports the batch runs.
        stream: Where the bar goes (standard error by default).
        interactive: Draw a bar; by default when `stream` is a terminal.
    """

    def __init__(
        self, total: int, stream: TextIO | None = None, interactive: bool | None = None
    ) -> None:
        self.total = total
        self.finished = 0
        self.running: list[str] = []
        self._started = time.monotonic()
        self._stream = stream = stream or sys.stderr
        if interactive is None:
            interactive = stream.isatty()
        self._bar = (
            tqdm(total=total, unit="report", file=stream, dynamic_ncols=True)
            if interactive
            else None
        )

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def started(self, report_id: str) -> None:
        """A report has started."""
        self.running.append(report_id)
        self._show()

    def done(self, outcome: Outcome) -> None:
        """A report has finished, well or not."""
        if outcome.department_id in self.running:
            self.running.remove(outcome.department_id)
        self.finished += 1
        status = "ok" if outcome.ok else f"FAILED at {outcome.step}"
        if self._bar is not None:
            line = f"{outcome.department_id}: {status} ({outcome.seconds:.1f} s)"
            self._bar.write(line, file=self._stream)
            self._bar.update()
            self._show()
        else:
            log.info(
                "[%d/%d] %s: %s (%.1f s); %s",
                self.finished,
                self.total,
                outcome.department_id,
                status,
                outcome.seconds,
                self.summary(),
            )

    def summary(self) -> str:
        """Reports running and the estimated time left, as one phrase."""
        running = f"running: {', '.join(self.running)}" if self.running else "none running"
        eta = self.eta()
        left = "" if eta is None else f"; about {_clock(eta)} left"
        return running + left

    def eta(self) -> float | None:
        """Seconds left at the pace so far; None before the first report finishes."""
        if not self.finished:
            return None
        elapsed = time.monotonic() - self._started
        return elapsed / self.finished * (self.total - self.finished)

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self._bar is not None:
            self._bar.close()

    def _show(self) -> None:
        if self._bar is not None:
            running = ", ".join(self.running)
            self._bar.set_postfix_str(f"running: {running}" if running else "", refresh=True)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
