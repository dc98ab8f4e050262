"""The device gather against a numpy oracle, its compile count, on 1 and 8 devices."""

import doctest
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit.data_efficiency import REPLICATE_MAX_BYTES, DeviceDataset, _device_gather
from algoperf_reinit.runner import CompileCounter

GATHERS = ("jit(_gather_replicated)", "jit(_gather_local)")


def test_doctests():
    assert doctest.testmod(_device_gather).failed == 0


def dataset(n=37, seed=0):
    """Every supported kind of column, with -0.0 and NaN to check bits, not values."""
    rng = np.random.default_rng(seed)
    data = {"tokens": rng.integers(0, 50_000, (n, 6)).astype(np.int32),
            "floats": rng.standard_normal((n, 2, 3)).astype(np.float32),
            "mask": rng.random((n, 6)) > 0.5,
            "half": rng.standard_normal(n).astype(jnp.bfloat16),
            "f16": rng.standard_normal(n).astype(np.float16),
            "bytes": rng.integers(0, 256, n).astype(np.uint8),
            "small": rng.integers(-128, 128, n).astype(np.int8)}
    data["floats"][0, 0, 0] = -0.0
    data["floats"][1, 0, 0] = np.nan
    return data


def assert_bit_identical(out, data, ids):
    for key, column in data.items():
        got, want = np.asarray(out[key]), column[np.asarray(ids)]  # the oracle
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), key


@pytest.mark.parametrize("placement", ["replicated", "sharded"])
def test_gather_is_bit_identical_to_numpy_indexing(placement):
    data = dataset()
    ds = DeviceDataset(data, placement=placement)
    assert ds.placement == placement and ds.num_samples == 37
    rng = np.random.default_rng(1)
    for ids in ([0, 1, 36, 0, 1, 1, 2, 3], rng.integers(0, 37, 64), np.arange(37)[::-1].copy()):
        out = ds(ids)
        assert_bit_identical(out, data, ids)
        batch = NamedSharding(ds.mesh, P("batch"))
        assert all(x.sharding == batch for x in out.values())


def test_a_single_array_in_gives_a_single_array_out():
    data = np.arange(30, dtype=np.float32).reshape(10, 3)
    out = DeviceDataset(data)(np.array([9, 0]))
    np.testing.assert_array_equal(np.asarray(out), data[[9, 0]])


@pytest.mark.parametrize("placement", ["replicated", "sharded"])
def test_compiles_once_per_batch_size_whatever_the_id_dtype(placement):
    ds = DeviceDataset(dataset(), placement=placement)
    rng = np.random.default_rng(2)
    with CompileCounter() as counter:
        for dtype in (np.int64, np.int32, np.uint16, np.int64):
            jax.block_until_ready(ds(rng.integers(0, 37, 16).astype(dtype)))
        jax.block_until_ready(ds(list(rng.integers(0, 37, 16))))
        compiled_16 = [n for _, n, _ in counter.events if n in GATHERS]
        jax.block_until_ready(ds(rng.integers(0, 37, 32)))
        compiled_32 = [n for _, n, _ in counter.events if n in GATHERS]
    assert len(compiled_16) == 1 and len(compiled_32) == 2


def test_ids_are_checked_on_the_host_never_clamped():
    ds = DeviceDataset(dataset(10))
    with pytest.raises(ValueError, match=r"ids \(min, max\) must be sample ids in \[0, 10\), "
                                         r"got \(0, 10\)"):
        ds([0, 10])
    with pytest.raises(ValueError, match=r"ids \(min, max\) must be sample ids in \[0, 10\), "
                                         r"got \(-1, 3\)"):
        ds(np.array([3, -1]))
    with pytest.raises(TypeError, match="ids must be an integer array of sample ids"):
        ds(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="ids must be an integer array of sample ids"):
        ds(np.array([True, False]))
    with pytest.raises(ValueError, match=r"ids must be a non-empty 1-D shape, got \(2, 2\)"):
        ds(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match=r"ids must be a non-empty 1-D shape, got \(0,\)"):
        ds(np.zeros(0, np.int32))


def test_placement_rule_and_padding():
    small = DeviceDataset(dataset())
    assert small.placement == "replicated" and small.padded_rows == 37
    assert small.nbytes < REPLICATE_MAX_BYTES
    # One device: replicating costs no more memory than sharding, so "auto" replicates.
    assert DeviceDataset(dataset(), replicate_max_bytes=0).placement == (
        "replicated" if jax.device_count() == 1 else "sharded")


def test_data_errors():
    with pytest.raises(ValueError, match="data must be arrays of one non-zero length"):
        DeviceDataset({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="data must be arrays of one non-zero length"):
        DeviceDataset({"a": np.zeros((0, 2))})
    with pytest.raises(ValueError, match="data must be a non-empty dict of arrays"):
        DeviceDataset({})
    with pytest.raises(TypeError, match=r"data\['c'\] must be bool, integer or float data"):
        DeviceDataset({"c": np.zeros(3, np.complex64)})
    with pytest.raises(ValueError, match=r"data must be an array with a leading sample axis"):
        DeviceDataset(np.float32(1.0))
    if not jax.config.jax_enable_x64:
        with pytest.raises(ValueError, match=r"data\['big'\] must be within int32"):
            DeviceDataset({"big": np.array([0, 2**40])})
        ints = DeviceDataset({"x": np.array([0, 2**31 - 1])})
        assert ints.arrays["x"].dtype == jnp.int32
    with pytest.raises(ValueError, match="placement must be one of 'auto', 'replicated', "
                                         "'sharded', got 'shard'; did you mean 'sharded'"):
        DeviceDataset(dataset(), placement="shard")
    with pytest.raises(ValueError, match=r"mesh\.axis_names must be \('batch',\)"):
        DeviceDataset(dataset(), mesh=Mesh(np.asarray(jax.devices()), ("data",)))


EIGHT_DEVICES = r"""
import json, jax, numpy as np, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from algoperf_reinit.data_efficiency import DeviceDataset
from algoperf_reinit.runner import CompileCounter
import test_device_gather as t

data = t.dataset()
mesh = Mesh(np.asarray(jax.devices()), ("batch",))
batch_sharding = NamedSharding(mesh, P("batch"))
rng = np.random.default_rng(3)
report = {"devices": jax.device_count()}
for placement in ("replicated", "sharded"):
    ds = DeviceDataset(data, placement=placement)
    step = jax.jit(lambda b: (b["floats"].sum(), b["tokens"].sum()),
                   in_shardings=(batch_sharding,))
    with CompileCounter() as counter:
        for k in range(3):
            ids = rng.integers(0, 37, 32)
            out = ds(ids)
            t.assert_bit_identical(out, data, ids)
            jax.block_until_ready(step(out))
    names = [n for _, n, _ in counter.events]
    try:
        ds(np.arange(12))
        length_error = None
    except ValueError as error:
        length_error = str(error)
    report[placement] = {
        "padded_rows": ds.padded_rows,
        "rows_per_device": sorted({s.data.shape[0] for s in ds.arrays["tokens"].addressable_shards}),
        "batch_shard_rows": sorted({s.data.shape[0] for s in out["tokens"].addressable_shards}),
        "sharding_ok": all(x.sharding == batch_sharding for x in out.values()),
        "gather_compiles": sum(n.startswith("jit(_gather") for n in names),
        "step_compiles": sum(n == "jit(<lambda>)" for n in names),
        "length_error": length_error}
report["auto"] = DeviceDataset(data, replicate_max_bytes=0).placement
print(json.dumps(report))
"""


def test_eight_devices_shard_batches_like_algoperf():
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8 and report["auto"] == "sharded"
    replicated, sharded = report["replicated"], report["sharded"]
    assert replicated["padded_rows"] == 37 and replicated["rows_per_device"] == [37]
    assert sharded["padded_rows"] == 40 and sharded["rows_per_device"] == [5]  # 37 -> 40
    for case in (replicated, sharded):
        assert case["batch_shard_rows"] == [4] and case["sharding_ok"]
        assert case["gather_compiles"] == 1 and case["step_compiles"] == 1, case
        assert case["length_error"] == ("len(ids) must be a multiple of the 8 devices, got 12; "
                                        "the batch is sharded P('batch') over them")
