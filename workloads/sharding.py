"""Sharding of the bundled workloads: AlgoPerf v0.6's one 1-D mesh named ``'batch'``.

Batches are global ``jax.Array``s of shape ``(global_batch_size, ...)`` sharded
``P('batch')`` over every device; params and model state are replicated
(``P()``). The mesh must be the one the submissions build
(``algoperf_reinit.submission.batch_mesh()``: the same devices in the same order,
the same axis name), so that a batch sharded here enters their jitted step
without a recompile; ``tests/test_mesh.py`` pins the two equal. The workloads do
not import the library, so the builder is written out here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from algoperf_reinit_workloads import _validation as v
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "BATCH_AXIS",
    "batch_mesh",
    "batch_sharding",
    "check_global_batch_size",
    "local_rows",
    "replicated_sharding",
    "shard_batch",
    "shard_local_batch",
]

BATCH_AXIS = "batch"


def batch_mesh() -> Mesh:
    """``Mesh(jax.devices(), ('batch',))``: every device of every process, in JAX's order."""
    return Mesh(np.asarray(jax.devices()), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P('batch'))``: leading axis split over all devices."""
    return NamedSharding(mesh, P(BATCH_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P())``: a full copy on every device."""
    return NamedSharding(mesh, P())


def check_global_batch_size(global_batch_size: Any, mesh: Mesh) -> int:
    """A positive int divisible by the mesh's device count.

    Raises:
      TypeError: for anything but an int.
      ValueError: for a size below 1 or not divisible by the device count.
    """
    size = v.integer("global_batch_size", global_batch_size, minimum=1)
    if size % mesh.size:
        raise v.value_error("global_batch_size", size,
                            f"divisible by the number of devices ({mesh.size})")
    return size


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Turns a host batch into global arrays sharded on the leading axis.

    Every process must pass the same global batch (the data here is a pure
    function of the key and step, so every host can build it); each device
    receives its slice.

    Args:
      batch: dict of host arrays sharing the leading (global batch) dimension.
      mesh: the mesh (:func:`batch_mesh`).

    Returns:
      Dict of global ``jax.Array``s with :func:`batch_sharding`.

    Raises:
      ValueError: if the leading dimension is not divisible by the device count.
    """
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] % mesh.size:
            raise ValueError(
                f"batch[{key!r}] has shape {value.shape}; its leading (global batch) "
                f"dimension must be divisible by the {mesh.size} devices"
            )
        if jax.process_count() == 1:
            out[key] = jax.device_put(value, sharding)
        else:
            out[key] = jax.make_array_from_callback(
                value.shape, sharding, lambda index, v=value: v[index]
            )
    return out


def local_rows(global_batch_size: int, mesh: Mesh) -> slice:
    """The rows of a global batch that live on this process's devices.

    With the mesh over ``jax.devices()`` (ordered by process), process ``p`` of
    ``P`` holds the contiguous rows ``[p * B / P, (p + 1) * B / P)``; this reads
    them from the sharding itself.

    Raises:
      ValueError: if the local rows are not one contiguous range (a mesh whose
        devices are not grouped by process).
    """
    index_map = batch_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    bounds = sorted(index[0].indices(global_batch_size)[:2] for index in index_map.values())
    start, stop = bounds[0][0], bounds[-1][1]
    covered = sum(b - a for a, b in {tuple(b) for b in bounds})
    if covered != stop - start:
        raise ValueError(f"this process's devices hold rows {bounds} of the global batch, "
                         "not one contiguous range; build the mesh over jax.devices()")
    return slice(start, stop)


def shard_local_batch(batch: Mapping[str, Any], mesh: Mesh,
                      global_batch_size: int) -> dict[str, jax.Array]:
    """Global arrays from this process's rows only (:func:`local_rows` of the batch).

    ``jax.make_array_from_process_local_data``: each process passes the rows of
    its own devices; with one process this is :func:`shard_batch`.

    Args:
      batch: dict of host arrays of ``local_rows(global_batch_size, mesh)`` rows.
      mesh: the mesh (:func:`batch_mesh`).
      global_batch_size: rows of the global batch.

    Returns:
      Dict of global ``jax.Array``s of leading dimension ``global_batch_size``.
    """
    if jax.process_count() == 1:
        return shard_batch(batch, mesh)
    sharding = batch_sharding(mesh)
    return {key: jax.make_array_from_process_local_data(
                sharding, np.asarray(value), (global_batch_size, *np.shape(value)[1:]))
            for key, value in batch.items()}
