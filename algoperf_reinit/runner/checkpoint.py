"""Trial checkpoints: one msgpack file per save, written atomically.

A checkpoint holds what AlgoPerf's holds — the model parameters, element 0 of the
optimizer state, the model state, ``train_state``, ``eval_results``,
``global_step`` and ``preemption_count`` — plus a *fingerprint* of the run
(workload, its kwargs, submission, hyperparameters, seed, batch size). Arrays go
through ``flax.serialization`` (the same round trip AlgoPerf's flax checkpoints
make of the optimizer state), everything else is a JSON string inside the file.

``checkpoint_<global_step>.msgpack`` is written to a temporary name, flushed to
disk and renamed, so a process killed mid-save leaves the previous checkpoint
intact; the newest ``keep`` checkpoints are kept (``--keep_checkpoints``, default
2), older ones removed only after the new one is in place. The file is an outer
msgpack map ``{format, sha256, body}`` whose ``body`` is the serialised content
and ``sha256`` its SHA-256: :func:`load_checkpoint` verifies it, so bytes changed
anywhere in the file (array data included) are a :class:`CheckpointError`, never a
run that silently continues from different values. A write that fails (a full or
read-only disk) removes its temporary file.
Restoring into the structure a fresh ``init`` built checks that the trees match:
a checkpoint of another run or another code version is a clear error, never a
silent partial restore.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.serialization
import numpy as np

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "find_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_arrays",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "algoperf_reinit.runner/2"
_OLD_FORMAT = "algoperf_reinit.runner/1"  # no checksum; still read
_NAME = re.compile(r"^checkpoint_(\d+)\.msgpack$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, of another run or another version)."""


class Checkpoint(NamedTuple):
    """A loaded checkpoint: ``meta`` (JSON part) and ``arrays`` (raw state dicts)."""

    path: pathlib.Path
    meta: dict[str, Any]
    arrays: dict[str, Any]


def find_checkpoints(trial_dir: str | pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """``(global_step, path)`` of the trial's checkpoints, oldest first."""
    trial_dir = pathlib.Path(trial_dir)
    if not trial_dir.is_dir():
        return []
    found = []
    for path in trial_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(trial_dir: str | pathlib.Path) -> pathlib.Path | None:
    """The newest checkpoint of a trial, or ``None``."""
    found = find_checkpoints(trial_dir)
    return found[-1][1] if found else None


def _state_dict(tree: Any) -> Any:
    return flax.serialization.to_state_dict(tree)


def save_checkpoint(
    trial_dir: str | pathlib.Path,
    *,
    global_step: int,
    meta: Mapping[str, Any],
    params: Any,
    model_state: Any,
    optimizer_state: Any,
    keep: int = 2,
) -> pathlib.Path:
    """Writes ``checkpoint_<global_step>.msgpack`` atomically; keeps the newest ``keep``.

    Args:
      trial_dir: the trial directory.
      global_step: steps done (names the file).
      meta: JSON-serialisable run facts (train_state, eval_results, fingerprint...).
      params, model_state: the model.
      optimizer_state: element 0 of the submission's optimizer state.
      keep: number of checkpoints to keep (older ones are removed after the write).

    Returns:
      The path written.
    """
    trial_dir = pathlib.Path(trial_dir)
    body = flax.serialization.msgpack_serialize({
        "meta": json.dumps(dict(meta), allow_nan=True),
        "params": _state_dict(params),
        "model_state": _state_dict(model_state),
        "optimizer_state": _state_dict(optimizer_state),
    })
    data = flax.serialization.msgpack_serialize({
        "format": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(body).hexdigest(), "body": body})
    path = trial_dir / f"checkpoint_{int(global_step)}.msgpack"
    tmp = trial_dir / f".{path.name}.tmp{os.getpid()}"
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for _, old in find_checkpoints(trial_dir)[:-keep] if keep > 0 else []:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | pathlib.Path) -> Checkpoint:
    """Reads a checkpoint file.

    Raises:
      CheckpointError: if the file is unreadable, truncated or not ours.
    """
    path = pathlib.Path(path)
    hint = ("; --resume_last_run falls back to an older checkpoint if one is intact, or "
            "pass --overwrite to start this run again")
    try:
        raw = flax.serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises several types for truncated/garbled input
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt ({type(e).__name__}: "
                              f"{e}){hint}") from None
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        raw = _verified_body(path, raw, hint)
    elif not isinstance(raw, dict) or raw.get("format") != _OLD_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} has format {found!r}, expected "
                              f"{CHECKPOINT_FORMAT!r}{hint}")
    try:
        meta = json.loads(raw["meta"])
        arrays = {k: raw[k] for k in ("params", "model_state", "optimizer_state")}
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is incomplete ({e}){hint}") from None
    return Checkpoint(path=path, meta=meta, arrays=arrays)


def _verified_body(path: pathlib.Path, raw: dict[str, Any], hint: str) -> dict[str, Any]:
    """The inner content of a checkpoint whose SHA-256 matches the one stored with it."""
    body, digest = raw.get("body"), raw.get("sha256")
    if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt (its SHA-256 checksum does "
                              f"not match its content){hint}")
    try:
        inner = flax.serialization.msgpack_restore(body)
    except Exception as e:  # pragma: no cover - a matching checksum over garbage
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt ({e}){hint}") from None
    if not isinstance(inner, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt (no content){hint}")
    return inner


def restore_arrays(checkpoint: Checkpoint, name: str, target: Any) -> Any:
    """Restores ``checkpoint.arrays[name]`` into the structure of ``target``.

    Raises:
      CheckpointError: if the tree structure, a shape or a dtype differs from ``target``.
    """
    try:
        restored = flax.serialization.from_state_dict(target, checkpoint.arrays[name])
    except Exception as e:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r}: its {name} do not match "
                              f"this run's structure ({e}); was it written by another "
                              "submission, workload or version?") from None
    import jax

    def check(path, want, got):
        want_arr, got_arr = np.asarray(want), np.asarray(got)
        if want_arr.shape != got_arr.shape or want_arr.dtype != got_arr.dtype:
            raise CheckpointError(
                f"checkpoint {str(checkpoint.path)!r}: {name}{jax.tree_util.keystr(path)} "
                f"has shape {got_arr.shape} {got_arr.dtype}, this run expects "
                f"{want_arr.shape} {want_arr.dtype}")

    jax.tree_util.tree_map_with_path(check, target, restored)
    return restored
