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
    "replicated_sharding",
    "shard_batch",
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
