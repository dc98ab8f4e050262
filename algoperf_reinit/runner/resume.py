"""Resuming a trial: which checkpoint, whether it is this run's, and the files lined up with it.

With ``--resume_last_run`` a trial continues from its newest intact checkpoint
(``checkpoint_<step>.msgpack``). :func:`resume_point` decides, before anything is
built or written:

* a checkpoint that fails its checksum or cannot be read is skipped for the newest
  older one that is intact (the runner keeps ``--keep_checkpoints``, default 2); the
  corrupt file is renamed ``checkpoint_<step>.msgpack.corrupt`` (never deleted) and
  the fallback is printed; if none is intact the run stops with the newest one's
  error and nothing is changed;
* a CSV file whose last line was cut off mid-write (no final newline: the process
  was killed while appending) loses that partial line, and says so;
* the checkpoint must have been written by this run: its *fingerprint* (workload,
  its kwargs, submission, ruleset, hyperparameters, seed, batch size) must equal
  the current one, else :class:`~algoperf_reinit.runner.checkpoint.CheckpointError`;
* a trial with results but no checkpoint (run with ``--nosave_checkpoints``) is
  refused, so that its results are not overwritten;
* a trial whose final checkpoint and ``summary.json`` exist is already finished;
* otherwise the rows written after the checkpoint's step are removed from the
  CSV files (eval rows up to the step stay: the checkpoint is saved after its
  eval; rows logged by the submission during update ``g`` and artefact rows of
  update ``g`` stay for ``g < step``), because the resumed run writes them again.

:func:`restore` then puts the checkpoint's arrays into the structures a fresh
``init`` built and returns the bookkeeping the loop continues from.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from algoperf_reinit._records import jsonable
from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.runner import checkpoint as ckpt
from algoperf_reinit.runner.artifacts import truncate_artifacts
from algoperf_reinit.runner.experiment import SUMMARY_JSON
from algoperf_reinit.runner.metrics import (
    EVAL_CSV,
    MEASUREMENTS_CSV,
    read_csv,
    repair_torn_tail,
    row_step,
    truncate_csv,
)

__all__ = [
    "Restored",
    "ResumePoint",
    "align_files",
    "check_fingerprint",
    "restore",
    "resume_point",
    "saved_eval_results",
]


class ResumePoint(NamedTuple):
    """Where a trial starts.

    Attributes:
      checkpoint: the checkpoint to continue from, or ``None`` (start at step 0).
      start_step: its global step (0 without a checkpoint).
      dropped_rows: CSV rows removed because they were written after the checkpoint.
      finished: the trial already ended (its final checkpoint and summary exist).
    """

    checkpoint: ckpt.Checkpoint | None
    start_step: int
    dropped_rows: int
    finished: bool


class Restored(NamedTuple):
    """A checkpoint's state, in the structures of the current run."""

    params: Any
    model_state: Any
    optimizer_state: tuple[Any, Any]  # (restored state, the submission's update_fn)
    train_state: Mapping[str, Any]
    eval_results: tuple[tuple[int, dict[str, Any]], ...]
    global_step: int
    preemption_count: int


def check_fingerprint(checkpoint: ckpt.Checkpoint, fingerprint: Mapping[str, Any]) -> None:
    """Raises unless the checkpoint was written by the run ``fingerprint`` describes.

    Raises:
      CheckpointError: naming every fact that differs and the ways out.
    """
    saved = checkpoint.meta.get("fingerprint", {})
    current = jsonable(dict(fingerprint), nonfinite="keep")
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        raise ckpt.CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} belongs to another run ("
            + "; ".join(diffs) + "); resume with the flags it was written with, or pass "
            "--overwrite or another --experiment_name to start a new run")


def align_files(trial_dir: pathlib.Path, step: int, artifacts: Sequence[RunArtifact]) -> int:
    """Removes the CSV rows written after the checkpoint at ``step``; returns how many."""
    def is_eval(row):
        return bool(row.get("accumulated_submission_time"))

    dropped = truncate_csv(trial_dir / EVAL_CSV, lambda r: row_step(r) <= step)
    dropped += truncate_csv(trial_dir / MEASUREMENTS_CSV, lambda r: row_step(r) < step or (
        row_step(r) == step and is_eval(r)))
    dropped += truncate_artifacts(trial_dir, artifacts, step)
    return dropped


def _newest_intact(trial_dir: pathlib.Path, fingerprint: Mapping[str, Any],
                   say: Callable[[str], None], writer: bool = True) -> ckpt.Checkpoint | None:
    """The newest checkpoint that loads; corrupt newer ones are renamed ``*.corrupt``."""
    found = ckpt.find_checkpoints(trial_dir)
    errors: list[tuple[pathlib.Path, ckpt.CheckpointError]] = []
    for _, path in reversed(found):
        try:
            checkpoint = ckpt.load_checkpoint(path)
        except ckpt.CheckpointError as e:
            errors.append((path, e))
            continue
        check_fingerprint(checkpoint, fingerprint)
        for bad, error in errors if writer else ():
            moved = bad.with_name(bad.name + ".corrupt")
            os.replace(bad, moved)
            say(f"{bad.name} is unusable ({str(error).split('; ')[0]}): resuming from the "
                f"older {path.name} instead; the bad file is kept as {moved.name}")
        return checkpoint
    if errors:
        path, error = errors[0]
        raise ckpt.CheckpointError(f"{error}; no older intact checkpoint to fall back to "
                                   f"({len(found)} checkpoint(s) in {str(trial_dir)!r})")
    return None


def _repair_csv_files(trial_dir: pathlib.Path, artifacts: Sequence[RunArtifact],
                      say: Callable[[str], None]) -> None:
    paths = [trial_dir / EVAL_CSV, trial_dir / MEASUREMENTS_CSV]
    paths += [p for a in artifacts if a.step_column is not None
              for p in sorted(trial_dir.glob(a.name)) if p.is_file()]
    for path in paths:
        torn = repair_torn_tail(path)
        if torn is not None:
            say(f"{path.name}: its last line was cut off mid-write ({torn[:40]!r}...): "
                "removed it (the resumed run writes that row again)")


def resume_point(trial_dir: pathlib.Path, *, resume: bool, fingerprint: Mapping[str, Any],
                 artifacts: Sequence[RunArtifact], say: Callable[[str], None],
                 writer: bool = True) -> ResumePoint:
    """Chooses where the trial starts and lines its files up with that point.

    Args:
      trial_dir: the trial directory (it exists).
      resume: ``--resume_last_run``.
      fingerprint: the current run's facts (see :func:`check_fingerprint`).
      artifacts: the submission's artefacts (their step CSVs are truncated too).
      say: prints one line.
      writer: whether this process writes the run directory (process 0); the
        others only read the checkpoint process 0 chooses and change no file.

    Returns:
      The :class:`ResumePoint`.

    Raises:
      CheckpointError: if no checkpoint is intact, or the newest intact one is of
        another run (nothing is changed then).
      ValueError: if the trial holds results but no checkpoint.
    """
    checkpoint = None
    if resume:
        checkpoint = _newest_intact(trial_dir, fingerprint, say, writer)
        if checkpoint is None and (read_csv(trial_dir / EVAL_CSV) or (trial_dir / SUMMARY_JSON).exists()):
            raise ValueError(
                f"{str(trial_dir)!r} holds results but no checkpoint to resume from (was it "
                "run with --nosave_checkpoints?); pass --overwrite to run it again from step "
                "0, or another --experiment_name")
        if writer:
            _repair_csv_files(trial_dir, artifacts, say)
    if checkpoint is None:
        if writer and resume and (trial_dir / EVAL_CSV).exists():
            # Killed before its first eval and checkpoint: nothing to keep, start again.
            align_files(trial_dir, 0, artifacts)
            say(f"{trial_dir.name} has no checkpoint to resume from: starting it again at "
                "step 0")
        return ResumePoint(None, 0, 0, finished=False)
    step = int(checkpoint.meta["global_step"])
    if checkpoint.meta.get("final") and (trial_dir / SUMMARY_JSON).exists():
        say(f"{trial_dir.name} already finished at step {step} (its final checkpoint); "
            "nothing to resume")
        return ResumePoint(checkpoint, step, 0, finished=True)
    dropped = align_files(trial_dir, step, artifacts) if writer else 0
    return ResumePoint(checkpoint, step, dropped, finished=False)


def saved_eval_results(checkpoint: ckpt.Checkpoint) -> tuple[tuple[int, dict[str, Any]], ...]:
    """The checkpoint's ``eval_results`` as ``(step, metrics)`` pairs."""
    return tuple((int(step), dict(result)) for step, result in checkpoint.meta["eval_results"])


def restore(checkpoint: ckpt.Checkpoint, params: Any, model_state: Any,
            optimizer_state: tuple[Any, Any]) -> Restored:
    """Restores a checkpoint into the structures a fresh ``init`` built.

    Args:
      checkpoint: the checkpoint.
      params, model_state: from ``workload.init_model_fn``.
      optimizer_state: ``(state, update_fn)`` from ``init_optimizer_state``; the
        state is restored, ``update_fn`` kept.

    Returns:
      The :class:`Restored` state; ``preemption_count`` is the checkpoint's plus one.

    Raises:
      CheckpointError: if a tree structure, shape or dtype differs.
    """
    meta = checkpoint.meta
    params = ckpt.restore_arrays(checkpoint, "params", params)
    model_state = ckpt.restore_arrays(checkpoint, "model_state", model_state)
    opt0 = ckpt.restore_arrays(checkpoint, "optimizer_state", optimizer_state[0])
    return Restored(
        params=params,
        model_state=model_state,
        optimizer_state=(opt0, optimizer_state[1]),
        train_state=dict(meta["train_state"]),
        eval_results=saved_eval_results(checkpoint),
        global_step=int(meta["global_step"]),
        preemption_count=int(meta["preemption_count"]) + 1,
    )
