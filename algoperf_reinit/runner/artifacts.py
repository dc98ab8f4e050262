"""A submission's run artefacts: declared through ``run_protocol``'s hook, checked once.

A submission file may define ``run_artifacts() -> Sequence[RunArtifact]``
(:data:`~algoperf_reinit.run_protocol.ARTIFACTS_HOOK`) naming the files it writes
into the trial directory. The runner knows no file of any submission by name: it
only does, for every declared artefact, what the protocol says —

* :func:`artifact_patterns`: ``--overwrite`` counts the files as the run's own;
* :func:`truncate_artifacts`: on resume from the checkpoint of step ``s`` the rows
  of a CSV artefact with a ``step_column`` whose step is ``>= s`` are dropped;
* :func:`report_new_rows`: the new rows of an artefact with a ``message`` are
  printed through it (skipping rows for which it returns ``None``).
"""

from __future__ import annotations

import pathlib
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from algoperf_reinit import _validation as v
from algoperf_reinit.run_protocol import ARTIFACTS_HOOK, RunArtifact
from algoperf_reinit.runner.metrics import read_csv, row_step, truncate_csv

__all__ = [
    "RESERVED_PATTERNS",
    "artifact_patterns",
    "check_artifacts",
    "load_artifacts",
    "report_new_rows",
    "seen_rows",
    "truncate_artifacts",
]

RESERVED_PATTERNS = (
    "flags_*.json", "meta_data_*.json", "hparams.json", "eval_measurements.csv",
    "measurements.csv", "summary.json", "checkpoint_*.msgpack", ".checkpoint_*",
    "checkpoint_*.msgpack.corrupt", ".lock", "run_metrics.png",
)
"""Files of the runner itself: an artefact may not name one of them."""

_FIX = ("return a list of algoperf_reinit.run_protocol.RunArtifact(name, step_column=..., "
        "message=...)")


def load_artifacts(module: types.ModuleType, source: str) -> tuple[RunArtifact, ...]:
    """Calls a submission module's artefact hook, if it has one, and checks the result.

    Args:
      module: the imported submission.
      source: how the submission was named (for messages).

    Returns:
      The declared artefacts; ``()`` for a submission without the hook.

    Raises:
      TypeError: if the hook is not callable or returns something that is not a
        sequence of :class:`~algoperf_reinit.run_protocol.RunArtifact`.
      ValueError: see :func:`check_artifacts`.
    """
    hook = getattr(module, ARTIFACTS_HOOK, None)
    if hook is None:
        return ()
    field = f"submission {source!r}: {ARTIFACTS_HOOK}"
    if not callable(hook):
        raise v.type_error(field, hook, "a function", fix=_FIX)
    return check_artifacts(hook(), field=f"{field}()")


def check_artifacts(declared: Any, *, field: str = f"{ARTIFACTS_HOOK}()"
                    ) -> tuple[RunArtifact, ...]:
    """Checks what an artefact hook returned.

    Args:
      declared: the hook's return value.
      field: name for the messages.

    Returns:
      The artefacts as a tuple.

    Raises:
      TypeError: for a non-sequence, an entry that is not a ``RunArtifact``, or a
        field of the wrong kind (``name`` or ``step_column`` not a string,
        ``message`` not callable).
      ValueError: for an empty, absolute or ``..`` name, a name of the runner's own
        files, an empty ``step_column``, or a name declared twice.
    """
    if isinstance(declared, str | bytes) or not isinstance(declared, Sequence):
        raise v.type_error(field, declared, "a sequence of RunArtifact", fix=_FIX)
    names: set[str] = set()
    for i, artifact in enumerate(declared):
        where = f"{field}[{i}]"
        v.instance(where, artifact, RunArtifact, fix=_FIX)
        _check_name(f"{where}.name", artifact.name)
        if artifact.name in names:
            raise v.value_error(f"{where}.name", artifact.name, "declared once")
        names.add(artifact.name)
        if artifact.step_column is not None:
            if not isinstance(artifact.step_column, str):
                raise v.type_error(f"{where}.step_column", artifact.step_column,
                                   "a column name (str) or None")
            if not artifact.step_column:
                raise v.value_error(f"{where}.step_column", artifact.step_column,
                                    "a non-empty column name or None")
        if artifact.message is not None and not callable(artifact.message):
            raise v.type_error(f"{where}.message", artifact.message,
                               "a function (row, earlier_rows) -> str | None, or None")
    return tuple(declared)


def _check_name(field: str, name: Any) -> None:
    if not isinstance(name, str):
        raise v.type_error(field, name, "a file name (str)")
    path = pathlib.PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name.startswith("\\"):
        raise v.value_error(field, name, "a non-empty name relative to the run directory")
    if any(path.match(pattern) for pattern in RESERVED_PATTERNS):
        raise v.value_error(field, name, "a file of the submission, not one of the runner's "
                            f"({', '.join(RESERVED_PATTERNS)})")


def artifact_patterns(artifacts: Sequence[RunArtifact]) -> tuple[str, ...]:
    """The file names (glob patterns) of the artefacts."""
    return tuple(a.name for a in artifacts)


def _matches(trial_dir: pathlib.Path, artifact: RunArtifact) -> list[pathlib.Path]:
    return sorted(p for p in trial_dir.glob(artifact.name) if p.is_file())


def truncate_artifacts(trial_dir: pathlib.Path, artifacts: Sequence[RunArtifact],
                       step: int) -> int:
    """Drops the rows at or after ``step`` of every CSV artefact with a ``step_column``.

    Returns:
      How many rows were dropped.
    """
    dropped = 0
    for artifact in artifacts:
        if artifact.step_column is None:
            continue
        column = artifact.step_column
        for path in _matches(trial_dir, artifact):
            dropped += truncate_csv(path, lambda row, c=column: row_step(row, c) < step)
    return dropped


def seen_rows(trial_dir: pathlib.Path, artifacts: Sequence[RunArtifact]
              ) -> Mapping[str, int]:
    """Rows already in each artefact with a ``message`` (they are not reported)."""
    return types.MappingProxyType({
        str(path): len(read_csv(path))
        for artifact in artifacts if artifact.message is not None
        for path in _matches(trial_dir, artifact)})


def report_new_rows(trial_dir: pathlib.Path, artifacts: Sequence[RunArtifact],
                    seen: Mapping[str, int], say: Callable[[str], None]) -> Mapping[str, int]:
    """Prints each new row of the artefacts with a ``message`` through it.

    Args:
      trial_dir: the trial directory.
      artifacts: the submission's artefacts.
      seen: rows already reported per file (from :func:`seen_rows` or a previous call).
      say: prints one line.

    Returns:
      The updated ``seen``.
    """
    counts = dict(seen)
    for artifact in artifacts:
        if artifact.message is None:
            continue
        for path in _matches(trial_dir, artifact):
            rows = read_csv(path)
            start = counts.get(str(path), 0)
            for i in range(start, len(rows)):
                text = artifact.message(rows[i], rows[:i])
                if text is not None:
                    say(str(text))
            counts[str(path)] = len(rows)
    return types.MappingProxyType(counts)
