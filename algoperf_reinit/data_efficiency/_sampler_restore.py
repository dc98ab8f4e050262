"""Restoring a curriculum sampler from its checkpoint: files, or a replay from the seed.

:func:`restore` is :meth:`DeepSpeedDataSampler.load_state_dict`. A cluster's ids
change with every reshuffle and are not in the (small) checkpoint, so they come back
one of two ways:

* **files** (DeepSpeed's way): each name in ``data_cluster_paths`` is re-opened by its
  basename under ``data_cluster_path`` (so clusters can be moved by changing that key).
  Used when every file exists, its CRC-32 matches the one saved in the state, and the
  state holds the sampler's own generator state.
* **replay**: otherwise — a file missing (a process without access to the writer's
  directory, or no ``data_cluster_path``), rewritten after the checkpoint (a later
  reshuffle, when a run continued past the checkpoint before it was resumed), or a
  DeepSpeed checkpoint whose ``np_rng_state`` is NumPy's global RNG (#8405) — the
  sampler is reset and draws ``curriculum_step`` global batches again from the seed
  (no files written), which rebuilds clusters, cursors and generator exactly; the
  result is checked against the state (names, cursors, generator) and the writer then
  rewrites every cluster file. It costs what drawing those batches cost (one to a few
  million ids per second on one core).

Then the cursors, the remaining ``batch``, ``consumed_samples``, ``curriculum_step``,
``current_difficulties`` and each scheduler's difficulty are set from the state, so the
stream continues exactly where the uninterrupted one would.

``compat_resume_bug=True`` is DeepSpeed 0.19.8: files only (a missing one is a
``FileNotFoundError``), the generator restarts from the seed and the schedulers are not
restored. In either mode the process-wide NumPy RNG is never touched, and the
sampler's previous clusters are replaced (DeepSpeed appends to them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._clusters import ClusterStore
from algoperf_reinit.data_efficiency._sampler_state import SamplerState, decode_state

if TYPE_CHECKING:
    from algoperf_reinit.data_efficiency._sampler import DeepSpeedDataSampler

__all__ = ["restore"]


def _files_match(sampler: DeepSpeedDataSampler, st: SamplerState) -> bool:
    """Whether the cluster files exist and hold what the state's CRC-32s say."""
    directory = sampler._cluster_dir
    if directory is None:
        return not st.data_cluster_paths
    if not all(os.path.isfile(os.path.join(directory, f"{name}.bin"))
               and os.path.isfile(os.path.join(directory, f"{name}.idx"))
               for name in st.data_cluster_paths):
        return False
    if st.crc32 is None:
        return True
    probe = ClusterStore(sampler._n)
    try:
        return probe.load(st.data_cluster_paths, directory) == st.crc32
    except (OSError, ValueError):
        return False


def _check(field: str, replayed: Any, saved: Any) -> None:
    if replayed != saved:
        raise _validation.value_error(
            f"state_dict[{field!r}]", saved, f"{replayed!r}, what replaying the stream from "
            "the seed gives", fix="the checkpoint belongs to another configuration, seed, "
            "dataset size, batch size or index files")


def _replay(sampler: DeepSpeedDataSampler, st: SamplerState) -> None:
    sampler._reset(write=False)
    for _ in range(st.curriculum_step):
        sampler.get_next_global_batch()
    _check("data_cluster_paths", sampler._store.names, st.data_cluster_paths)
    _check("data_cluster_current_position", sampler._store.positions,
           st.data_cluster_current_position)
    _check("current_difficulties", sampler._current, st.current_difficulties)
    if st.rng_state is not None:
        _check("np_rng_state", sampler._rng.bit_generator.state, st.rng_state)
    sampler._store.directory = sampler._write_dir
    sampler._store.rewrite_all()


def _load_files(sampler: DeepSpeedDataSampler, st: SamplerState) -> None:
    sampler._reset(write=False)
    if st.data_cluster_paths:
        if sampler._cluster_dir is None:
            raise _validation.value_error(
                "data_cluster_path", None, "a directory holding the checkpoint's clusters",
                fix="compat_resume_bug re-opens the cluster files, as DeepSpeed does")
        try:
            sampler._store.load(st.data_cluster_paths, sampler._cluster_dir)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; the checkpoint's clusters are re-opened by name under "
                f"data_cluster_path = {sampler._cluster_dir!r}") from err
    sampler._store.directory = sampler._write_dir


def restore(sampler: DeepSpeedDataSampler, state_dict: Mapping[str, Any]) -> None:
    """Set ``sampler`` to the checkpoint ``state_dict`` (see the module docstring).

    Raises:
      TypeError, ValueError: for a malformed state, or one a replay contradicts.
      FileNotFoundError: with ``compat_resume_bug`` and a missing cluster file.
    """
    st = decode_state(state_dict, metric_names=list(sampler._schedulers),
                      num_samples=sampler._n)
    if sampler._compat:
        _load_files(sampler, st)
    elif st.rng_state is not None and _files_match(sampler, st):
        _load_files(sampler, st)
        sampler._rng.bit_generator.state = st.rng_state
    else:
        _replay(sampler, st)
    if not sampler._compat:
        for name, difficulty in st.current_difficulties.items():
            sampler._schedulers[name].load_state_dict({"current_difficulty": difficulty})
    sampler._store.positions = st.data_cluster_current_position
    sampler._step = st.curriculum_step
    sampler._current = dict(st.current_difficulties)
    sampler._consumed = st.consumed_samples
    sampler._batch, sampler._cursor = st.batch, 0
