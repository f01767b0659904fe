"""Progress of a long run, and the user's way to stop it.

A run (planning a localizer, drawing its label maps) reports its steps as `progress(fraction, text)`; the caller
shows them (Slicer's progress dialog, a terminal) and answers False to stop: the run then raises `Cancelled` at
that step, before anything was written or added to a scene. Pure Python: the core never imports Qt; the Slicer
module turns a dialog's Cancel button into the False answer.
"""

from __future__ import annotations

from collections.abc import Callable

# fraction in [0, 1], what is being done -> False to stop (None or True: go on)
Report = Callable[[float, str], "bool | None"]


class Cancelled(Exception):
    """The user stopped the run; nothing was changed."""


class Progress:
    """Reports steps to `report` as fractions of this run's share [start, end] of the whole; `part` hands a
    sub-run (a re-plan of a flipped image, the label maps) its own share, so nested steps never go backwards."""

    def __init__(self, report: Report | None = None, start: float = 0.0, end: float = 1.0):
        self.report, self.start, self.end = report, float(start), float(end)

    def __call__(self, fraction: float, text: str) -> None:
        """Tell the caller that `text` starts at `fraction` of this run; raises `Cancelled` when it says stop."""
        if self.report is None:
            return
        at = self.start + (self.end - self.start) * min(max(float(fraction), 0.0), 1.0)
        if self.report(at, text) is False:
            raise Cancelled(f"cancelled while {text[:1].lower() + text[1:]}")

    def part(self, start: float, end: float) -> Progress:
        """The share [start, end] of this run (fractions of it) as a run of its own."""
        span = self.end - self.start
        return Progress(self.report, self.start + span * start, self.start + span * end)


def as_progress(progress: Progress | Report | None) -> Progress:
    """A `Progress` from what a caller passed: one already, a bare report function, or nothing."""
    return progress if isinstance(progress, Progress) else Progress(progress)
