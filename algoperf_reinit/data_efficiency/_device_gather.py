"""A device-resident dataset and a jitted gather of examples by sample id.

The curriculum sampler runs on the host and yields sample ids; :class:`DeviceDataset`
turns them into a batch on the devices, so the host moves only ``global_batch`` int32
ids per step, never the examples. The dataset (an array, or a dict of arrays with
one leading sample axis, AlgoPerf style) is put on the devices once, at
construction; each call checks the ids on the host (one ``min`` and one ``max``:
an id outside ``[0, num_samples)`` is a ``ValueError``, never clamped), sends them,
and runs one jitted gather whose output is sharded ``NamedSharding(mesh, P('batch'))``
on its leading axis, ready for a train step jitted with AlgoPerf's shardings. It
compiles once per batch size (the dataset's shapes are fixed; ids of any integer
dtype are sent as int32).

**Placement** over the 1-D ``'batch'`` mesh (default: every device, as AlgoPerf builds
it), by ``placement``:

* ``"replicated"``: every device holds the whole dataset and gathers the rows of its
  own slice of the batch (the ids are sharded like the batch). No communication per
  gather; memory per device = the whole dataset.
* ``"sharded"``: the rows are split over the devices like a batch
  (``P('batch')``), padded with zero rows to a multiple of the device count (padding
  rows are never selected: ids are checked against the real count). Every device
  receives all ids, gathers those that fall in its rows (zeros elsewhere) and one
  reduce-scatter over ``'batch'`` gives each device its slice of the batch: memory
  per device = ``1 / devices`` of the dataset; communication per gather = a
  reduce-scatter of the batch (``(devices - 1) / devices`` of its bytes per device).
  The sum runs on the bit patterns (floats as unsigned ints of their width, bools as
  uint8), so every example arrives bit-identical (``-0.0`` and NaN payloads too).
* ``"auto"`` (the default): replicated when the dataset (after dtype
  canonicalisation) is at most ``replicate_max_bytes`` (default
  :data:`REPLICATE_MAX_BYTES`, 64 MiB) or there is one device, sharded otherwise:
  below that size the memory is cheap and the per-step collective is not.

Dtypes are JAX's canonical ones (with ``jax_enable_x64`` off, int64 data becomes
int32 — a ``ValueError`` if a value does not fit — and float64 float32). Several
processes: every process passes the same dataset and the same global ids (the
sampler computes the same global batch everywhere); arrays are assembled with
``jax.make_array_from_callback``, each process placing its own devices' part.

Example:
  >>> import numpy as np
  >>> data = {"inputs": np.arange(20, dtype=np.int32).reshape(10, 2),
  ...         "weights": np.linspace(0, 1, 10, dtype=np.float32)}
  >>> dataset = DeviceDataset(data)
  >>> batch = dataset(np.array([3, 0, 9, 3, 1, 1, 2, 5]))  # 8 ids: any device count <= 8
  >>> batch["inputs"][:4].tolist()
  [[6, 7], [0, 1], [18, 19], [6, 7]]
  >>> dataset(np.array([0, 1, 2, 3, 4, 5, 6, 10]))
  Traceback (most recent call last):
  ...
  ValueError: ids (min, max) must be sample ids in [0, 10), got (0, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit import _validation

__all__ = ["PLACEMENTS", "REPLICATE_MAX_BYTES", "DeviceDataset"]

PLACEMENTS = ("auto", "replicated", "sharded")
"""Where the dataset lives: chosen by size, on every device, or split over them."""
REPLICATE_MAX_BYTES = 64 << 20
"""``placement="auto"`` replicates datasets up to this many bytes."""

_BITS = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def _to_bits(x: jax.Array) -> jax.Array:
    """``x`` as unsigned ints of its width (bools as uint8), for an exact sum."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint8)
    return jax.lax.bitcast_convert_type(x, _BITS[x.dtype.itemsize])


def _from_bits(bits: jax.Array, dtype: Any) -> jax.Array:
    if dtype == jnp.bool_:
        return bits.astype(jnp.bool_)
    return jax.lax.bitcast_convert_type(bits, dtype)


def _gather_replicated(data: dict[str, jax.Array], ids: jax.Array) -> dict[str, jax.Array]:
    return {k: x.at[ids].get(mode="promise_in_bounds") for k, x in data.items()}


def _gather_local(data: dict[str, jax.Array], ids: jax.Array, *, rows: int
                  ) -> dict[str, jax.Array]:
    """One device's part of the sharded gather (inside ``shard_map``)."""
    local = ids - jax.lax.axis_index("batch") * rows
    mine = (local >= 0) & (local < rows)
    local = jnp.where(mine, local, 0)
    out = {}
    for key, x in data.items():
        bits = _to_bits(x.at[local].get(mode="promise_in_bounds"))
        bits = jnp.where(mine.reshape((-1,) + (1,) * (x.ndim - 1)), bits, 0)
        summed = jax.lax.psum_scatter(bits, "batch", scatter_dimension=0, tiled=True)
        out[key] = _from_bits(summed, x.dtype)
    return out


def _canonical(field: str, value: Any) -> np.ndarray:
    """``value`` as a host array of JAX's canonical dtype (ints checked to fit)."""
    array = np.asarray(value)
    if array.ndim < 1:
        raise _validation.value_error(field, array.shape, "an array with a leading sample axis")
    kinds = (np.bool_, np.integer, np.floating)
    if (not any(jnp.issubdtype(array.dtype, kind) for kind in kinds)
            or array.dtype.itemsize not in _BITS):
        raise _validation.type_error(field, array.dtype, "bool, integer or float data")
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(array.dtype))
    if dtype != array.dtype and array.dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise _validation.value_error(
                field, f"{array.dtype} in [{array.min()}, {array.max()}]", f"within {dtype}",
                fix="enable jax_enable_x64 or store smaller values")
    return array.astype(dtype, copy=False)


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host array every process holds (one process: device_put)."""
    if jax.process_count() == 1:
        return jax.device_put(array, sharding)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


class DeviceDataset:
    """A dataset on the devices; calling it with sample ids gathers a sharded batch.

    Args:
      data: an array, or a dict of arrays, with one leading sample axis (the same
        length in every array).
      mesh: a ``jax.sharding.Mesh`` with the one axis ``'batch'``; default: every
        device (``Mesh(jax.devices(), ('batch',))``, AlgoPerf's mesh).
      placement: one of :data:`PLACEMENTS` (see the module docstring).
      replicate_max_bytes: the size limit of ``placement="auto"``.

    Raises:
      TypeError, ValueError: for data of different lengths or unsupported dtypes, or
        a mesh that is not 1-D ``'batch'``.
    """

    def __init__(self, data: Mapping[str, Any] | Any, *, mesh: Mesh | None = None,
                 placement: str = "auto", replicate_max_bytes: int = REPLICATE_MAX_BYTES
                 ) -> None:
        self._single = not isinstance(data, Mapping)
        arrays = {"data": data} if self._single else dict(data)
        if not arrays:
            raise _validation.value_error("data", arrays, "a non-empty dict of arrays")
        host = {k: _canonical("data" if self._single else f"data[{k!r}]", v)
                for k, v in arrays.items()}
        lengths = {k: v.shape[0] for k, v in host.items()}
        if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
            raise _validation.value_error("data", lengths, "arrays of one non-zero length")
        self._mesh = mesh if mesh is not None else Mesh(np.asarray(jax.devices()), ("batch",))
        _validation.instance("mesh", self._mesh, Mesh)
        if tuple(self._mesh.axis_names) != ("batch",):
            raise _validation.value_error("mesh.axis_names", self._mesh.axis_names,
                                          "('batch',), a 1-D mesh")
        self._num = next(iter(lengths.values()))
        self._nbytes = sum(v.nbytes for v in host.values())
        limit = _validation.integer("replicate_max_bytes", replicate_max_bytes, minimum=0)
        self._placement = _validation.choice("placement", placement, PLACEMENTS)
        if self._placement == "auto":
            small = self._nbytes <= limit or self.num_devices == 1
            self._placement = "replicated" if small else "sharded"
        self._data = self._place(host)
        self._gather = self._build()

    def _place(self, host: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        if self._placement == "replicated":
            return {k: _put(v, NamedSharding(self._mesh, P())) for k, v in host.items()}
        pad = -self._num % self.num_devices
        sharding = NamedSharding(self._mesh, P("batch"))
        return {k: _put(np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                        if pad else v, sharding) for k, v in host.items()}

    def _build(self) -> Any:
        batch = NamedSharding(self._mesh, P("batch"))
        if self._placement == "replicated":
            return jax.jit(_gather_replicated, out_shardings=batch)
        rows = self.padded_rows // self.num_devices
        local = jax.shard_map(functools.partial(_gather_local, rows=rows), mesh=self._mesh,
                              in_specs=(P("batch"), P()), out_specs=P("batch"))
        return jax.jit(local, out_shardings=batch)

    @property
    def num_samples(self) -> int:
        """Real samples (ids ``0 .. num_samples - 1``)."""
        return self._num

    @property
    def padded_rows(self) -> int:
        """Rows on the devices (sharded: padded to a multiple of the device count)."""
        return next(iter(self._data.values())).shape[0]

    @property
    def num_devices(self) -> int:
        """Devices on the mesh's ``'batch'`` axis."""
        return int(self._mesh.shape["batch"])

    @property
    def placement(self) -> str:
        """``"replicated"`` or ``"sharded"`` (``"auto"`` resolved)."""
        return self._placement

    @property
    def mesh(self) -> Mesh:
        """The mesh the dataset and its batches live on."""
        return self._mesh

    @property
    def nbytes(self) -> int:
        """Bytes of one copy of the dataset (before padding)."""
        return self._nbytes

    @property
    def arrays(self) -> dict[str, jax.Array]:
        """The device arrays (sharded ones include the padding rows)."""
        return dict(self._data)

    def check_ids(self, ids: Any) -> np.ndarray:
        """The ids as int32 after the host-side checks (raises for a bad id array)."""
        array = np.asarray(ids)
        if array.dtype.kind not in "iu":
            raise _validation.type_error("ids", ids, "an integer array of sample ids")
        if array.ndim != 1 or array.size == 0:
            raise _validation.value_error("ids", array.shape, "a non-empty 1-D shape")
        if array.size % self.num_devices:
            raise _validation.value_error(
                "len(ids)", array.size, f"a multiple of the {self.num_devices} devices",
                fix="the batch is sharded P('batch') over them")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= self._num:
            raise _validation.value_error("ids (min, max)", (low, high),
                                          f"sample ids in [0, {self._num})")
        return array.astype(np.int32, copy=False)

    def __call__(self, ids: Any) -> dict[str, jax.Array] | jax.Array:
        """The examples of ``ids`` (shape ``[len(ids), ...]``), sharded ``P('batch')``.

        Args:
          ids: 1-D integer sample ids (host array or list), length a multiple of the
            device count; repeats allowed.

        Returns:
          A dict like the dataset (or one array), leading axis ``len(ids)``.

        Raises:
          TypeError, ValueError: for non-integer ids, a bad shape or an id out of range.
        """
        spec = P() if self._placement == "sharded" else P("batch")
        ids = _put(self.check_ids(ids), NamedSharding(self._mesh, spec))
        out = self._gather(self._data, ids)
        return out["data"] if self._single else out
