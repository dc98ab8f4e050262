"""Faults in the user's own code, kept apart from the runner's clean input errors.

Bad input the runner can check (flags, files, a signature) is a ``ValueError`` or
``TypeError`` that :func:`~algoperf_reinit.runner.run.main` prints as one
``error:`` line. An exception raised *inside* the submission's code (a syntax
error at import, its own exception in ``update_params``...) is different: the
user needs its traceback. The runner wraps it in :class:`SubmissionFault`
(``raise SubmissionFault(...) from error``); ``main`` prints the original
traceback, then one line saying which trial failed, the directory it left and how
to resume (:func:`fault_line`).
"""

from __future__ import annotations

import pathlib
from typing import Any

__all__ = ["SubmissionFault", "fault_line"]


class SubmissionFault(Exception):
    """An exception raised by the submission's code; the original is ``__cause__``.

    Attributes:
      function: what raised (``'update_params'``, ``'import'``...).
      trial: the trial index, or ``None`` before any trial.
      trial_dir: the trial directory it left, or ``None`` if nothing was written.
      step: the last checkpoint's step the trial can resume from, or ``None``.
    """

    def __init__(self, function: str, *, trial: int | None = None,
                 trial_dir: pathlib.Path | None = None, step: int | None = None) -> None:
        super().__init__(function)
        self.function = function
        self.trial = trial
        self.trial_dir = trial_dir
        self.step = step

    def located(self, trial: int, trial_dir: pathlib.Path | None,
                step: int | None) -> SubmissionFault:
        """The same fault with the trial it happened in (the cause is kept)."""
        fault = SubmissionFault(self.function, trial=trial, trial_dir=trial_dir, step=step)
        fault.__cause__ = self.__cause__
        return fault


def _cause(fault: SubmissionFault) -> str:
    error: Any = fault.__cause__
    return f"{type(error).__name__}: {error}" if error is not None else "?"


def fault_line(fault: SubmissionFault) -> str:
    """The one ``error:`` line ending the traceback of a fault in the user's code."""
    where = f"the submission's {fault.function}"
    if fault.trial is None:
        return (f"error: {where} raised {_cause(fault)} (traceback above); nothing was "
                "written: fix it and run again")
    head = f"error: trial {fault.trial} failed in {where} ({_cause(fault)}; traceback above)"
    if fault.trial_dir is None:
        return f"{head}; it wrote nothing: fix it and run again"
    if fault.step is None:
        return (f"{head}; it left {str(fault.trial_dir)!r} without a checkpoint: fix it and "
                "rerun with the same flags plus --resume_last_run (the trial starts again "
                "at step 0)")
    return (f"{head}; it left {str(fault.trial_dir)!r} with a checkpoint at step "
            f"{fault.step}: fix it and rerun with the same flags plus --resume_last_run to "
            "continue from there")
