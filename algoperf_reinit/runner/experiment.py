"""The experiment directory: AlgoPerf's layout, overwrite safety and run files.

``<experiment_dir>/<experiment_name>/<workload>_jax/trial_<k>/`` holds
``hparams.json`` (external tuning), ``flags_<p>.json`` and ``meta_data_<p>.json``
(``p`` = preemption count), ``eval_measurements.csv``, ``measurements.csv``,
checkpoints and ``summary.json``, and whatever files the submission declares
through its artefact hook (``run_protocol``; recorded in ``meta_data_<p>.json``
under :data:`ARTIFACTS_KEY`).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from typing import Any

from algoperf_reinit._records import dumps_strict

__all__ = [
    "ARTIFACTS_KEY",
    "RUN_FILE_PATTERNS",
    "SUMMARY_JSON",
    "check_run_dir",
    "make_dirs",
    "prepare_workload_dir",
    "remove_empty_dirs",
    "run_metadata",
    "write_json",
]

# Files our runner writes into a trial directory (glob patterns).
RUN_FILE_PATTERNS = (
    "flags_*.json", "meta_data_*.json", "hparams.json", "eval_measurements.csv",
    "measurements.csv", "summary.json", "checkpoint_*.msgpack", ".checkpoint_*", "*.tmp*",
    "checkpoint_*.msgpack.corrupt", ".lock", "run_metrics.png",
)
SUMMARY_JSON = "summary.json"
"""The trial's summary (written by the runner at the end of a trial)."""
ARTIFACTS_KEY = "submission_artifacts"
"""Key of ``meta_data_<p>.json`` listing the submission's artefact patterns."""
_MARKERS = ("flags_*.json", "meta_data_*.json")


def write_json(path: str | pathlib.Path, value: Any) -> pathlib.Path:
    """Writes strict JSON (non-finite floats become ``null``) atomically."""
    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(dumps_strict(value, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:  # a full or read-only disk: leave no stray temporary file
        tmp.unlink(missing_ok=True)
        raise
    return path


def make_dirs(path: pathlib.Path) -> list[pathlib.Path]:
    """``path.mkdir(parents=True, exist_ok=True)``; returns the directories it created."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing  # innermost first


def remove_empty_dirs(created: Sequence[pathlib.Path]) -> None:
    """Removes the directories :func:`make_dirs` created, innermost first, while empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty (or gone): keep it and everything above
            return


def _recorded_artifacts(trial_dir: pathlib.Path) -> list[str]:
    """The artefact patterns the trial's ``meta_data_<p>.json`` files recorded."""
    patterns: list[str] = []
    for meta in trial_dir.glob("meta_data_*.json"):
        try:
            recorded = json.loads(meta.read_text()).get(ARTIFACTS_KEY) or []
        except (OSError, ValueError, AttributeError):
            continue
        patterns += [p for p in recorded if isinstance(p, str)]
    return patterns


def check_run_dir(workload_dir: pathlib.Path, artifact_patterns: Sequence[str] = ()) -> None:
    """Raises unless ``workload_dir`` looks like a run directory this runner wrote.

    It must contain only ``trial_<k>`` directories, each holding only files of
    :data:`RUN_FILE_PATTERNS`, of ``artifact_patterns`` or of the artefacts its
    meta-data files recorded, and at least one flags or meta-data file.

    Args:
      workload_dir: the directory.
      artifact_patterns: the current submission's artefact file names.

    Raises:
      ValueError: naming the first thing that does not belong.
    """
    refuse = (f"refusing to delete {str(workload_dir)!r} with --overwrite: it does not look "
              "like a run directory of this runner")
    for child in workload_dir.iterdir():
        if not (child.is_dir() and child.name.startswith("trial_")
                and child.name[6:].isdigit()):
            raise ValueError(f"{refuse} ({child.name!r} is not a trial_<k> directory); "
                             "delete it yourself if you are sure")
        names = [p for p in child.iterdir()]
        patterns = (*RUN_FILE_PATTERNS, *artifact_patterns, *_recorded_artifacts(child))
        for p in names:
            if not any(p.match(pattern) for pattern in patterns) or p.is_dir():
                raise ValueError(f"{refuse} ({str(p)!r} is not a file the runner writes); "
                                 "delete it yourself if you are sure")
        if names and not any(p.match(m) for p in names for m in _MARKERS):
            raise ValueError(f"{refuse} ({str(child)!r} has no flags_*.json or "
                             "meta_data_*.json)")


def prepare_workload_dir(workload_dir: pathlib.Path, *, overwrite: bool,
                         resume_last_run: bool, artifact_patterns: Sequence[str] = ()) -> str:
    """Checks (or, with ``--overwrite``, empties) ``<experiment_dir>/<experiment_name>/<workload>_jax``.

    A new directory is not created here: the first trial creates it once its
    submission has initialised (a trial that fails before writing anything leaves
    no empty directory behind).

    ``artifact_patterns`` (the submission's artefact file names) are files of the
    run for ``overwrite``'s check.

    Returns:
      ``'new'``, ``'overwritten'`` or ``'resumed'``.

    Raises:
      ValueError: if the directory exists and neither flag is set (never a prompt),
        or ``--overwrite`` is refused by :func:`check_run_dir`.
    """
    if workload_dir.exists() and not workload_dir.is_dir():
        raise ValueError(f"{str(workload_dir)!r} exists and is not a directory")
    if workload_dir.exists() and any(workload_dir.iterdir()):
        if resume_last_run:
            return "resumed"
        if overwrite:
            check_run_dir(workload_dir, artifact_patterns)
            shutil.rmtree(workload_dir)
            workload_dir.mkdir(parents=True)
            return "overwritten"
        raise ValueError(
            f"run directory {str(workload_dir)!r} already exists; pass --resume_last_run to "
            "continue it, --overwrite to delete it and start again, or another "
            "--experiment_name")
    return "new"


def _version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def run_metadata(workload: Any, *, rng_seed: int, preemption_count: int,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``meta_data_<p>.json``: the workload's facts, the seed and the environment."""
    import jax

    meta = {f"workload.{k}": v for k, v in workload.metadata().items()}
    meta.update(
        rng_seed=rng_seed,
        preemption_count=preemption_count,
        written_at_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        python=sys.version.split()[0],
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        jax_backend=jax.default_backend(),
        jax_devices=[str(d) for d in jax.devices()],
        local_device_count=jax.local_device_count(),
        **{f"version.{n}": _version(n) for n in (
            "algoperf-reinit", "jax", "jaxlib", "flax", "optax", "numpy", "scikit-learn")},
    )
    meta.update(extra or {})
    return meta
