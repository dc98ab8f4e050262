"""Progress display: a one-line bar on a terminal, plain periodic lines otherwise.

The bar shows the step, the latest loss, learning rate and cycle the submission
logged through ``workload.metrics_logger`` — labelled with the step they were
logged at (``loss 0.31 lr 0.001 @ step 80``: a submission logs every N steps, so
they may be older than the current step) —, the latest eval's target metric with
its step, and the time left (by the step rate toward the step limit, and by the
time budget). When output is not a terminal (CI, a pipe, a file) it prints one
plain line every ``lines_every`` steps instead of redrawing. Messages (evals,
events) are printed on their own lines.

Long silent phases are shown as they start (:meth:`Progress.phase`):
``initialising…`` (building the model and the optimizer), ``compiling…`` (the
first step, which holds the train step's compile) and ``evaluating…``. The bar
shows each in place; plain lines show each kind once (the first eval is the one
that compiles).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from algoperf_reinit import _validation as v

__all__ = ["MODES", "Progress"]

MODES = ("auto", "bar", "lines", "none")


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = max(round(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Shows training progress.

    Args:
      total_steps: the step limit the bar fills toward.
      budget_sec: the submission-time budget (for "time left").
      mode: ``'auto'`` (bar if ``stream`` is a terminal, else lines), ``'bar'``,
        ``'lines'`` or ``'none'`` (messages only).
      stream: where to write (default ``sys.stdout``).
      lines_every: steps between plain lines.
      width: bar width in characters.
    """

    def __init__(self, total_steps: int, budget_sec: float, *, mode: str = "auto",
                 stream: TextIO | None = None, lines_every: int | None = None,
                 width: int = 24):
        self.stream = stream or sys.stdout
        v.choice("progress mode", mode, MODES)
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)
            mode = "bar" if isatty() else "lines"
        self.mode = mode
        self.total_steps = max(int(total_steps), 1)
        self.budget_sec = budget_sec
        self.lines_every = lines_every or max(self.total_steps // 10, 1)
        self.width = width
        self._start = time.monotonic()
        self._start_step: int | None = None
        self._bar_shown = False
        self._last_line_step = -1
        self._phases_shown: set[str] = set()
        self.latest_eval: dict[str, Any] = {}  # the runner sets the latest eval's target metric
        self.latest_eval_step: int | None = None

    def _eta(self, step: int, submission_time: float) -> float | None:
        if self._start_step is None or step <= self._start_step:
            return None
        rate = (time.monotonic() - self._start) / (step - self._start_step)
        by_steps = rate * (self.total_steps - step)
        by_budget = self.budget_sec - submission_time
        return max(min(by_steps, by_budget), 0.0)

    def _text(self, step: int, latest: Mapping[str, Any], submission_time: float,
              latest_step: int | None) -> str:
        parts = [f"step {step}/{self.total_steps}"]
        logged = [f"{label} {_fmt_value(latest[key])}" for key, label in (
            ("loss", "loss"), ("learning_rate", "lr"), ("cycle", "cycle")) if key in latest]
        if logged:
            at = f" @ step {latest_step}" if latest_step is not None else ""
            parts.append(" ".join(logged) + at)
        for key, value in self.latest_eval.items():
            if value is not None:
                at = (f" @ step {self.latest_eval_step}" if self.latest_eval_step is not None
                      else "")
                parts.append(f"{key} {_fmt_value(value)}{at}")
        parts.append(f"{_fmt_time(submission_time)} on the clock")
        parts.append(f"~{_fmt_time(self._eta(step, submission_time))} left")
        return " | ".join(parts)

    def update(self, step: int, latest: Mapping[str, Any], submission_time: float,
               latest_step: int | None = None) -> None:
        """Reports that ``step`` steps are done.

        Args:
          step: steps done.
          latest: the latest values the submission logged (loss, learning_rate, cycle).
          submission_time: seconds on the clock.
          latest_step: the step ``latest`` was logged at (shown beside it).
        """
        if self._start_step is None:  # the rate is measured from the first update on
            self._start_step = step
            self._start = time.monotonic()
        if self.mode == "bar":
            filled = min(int(self.width * step / self.total_steps), self.width)
            bar = "#" * filled + "." * (self.width - filled)
            text = self._text(step, latest, submission_time, latest_step)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
            self.stream.flush()
            self._bar_shown = True
        elif self.mode == "lines" and (step % self.lines_every == 0 or step == 1):
            if step != self._last_line_step:
                self.stream.write(self._text(step, latest, submission_time, latest_step)
                                  + "\n")
                self.stream.flush()
                self._last_line_step = step

    def phase(self, name: str, step: int) -> None:
        """Shows that a long phase (``'compiling'``, ``'evaluating'``...) starts at ``step``.

        The bar shows it in place (the next update replaces it); plain lines print
        each phase name once; ``'none'`` prints nothing.
        """
        text = f"step {step}/{self.total_steps} | {name}\u2026"
        if self.mode == "bar":
            filled = min(int(self.width * step / self.total_steps), self.width)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
            self.stream.flush()
            self._bar_shown = True
        elif self.mode == "lines" and name not in self._phases_shown:
            self._phases_shown.add(name)
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """Prints ``text`` on its own line (above the bar)."""
        if self._bar_shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the bar's line."""
        if self._bar_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_shown = False
