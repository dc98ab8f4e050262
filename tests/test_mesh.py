"""The workloads' mesh and the submissions' mesh are the same mesh (for "compile once").

The bundled workloads never import the library, so they build their own 1-D
``'batch'`` mesh (``algoperf_reinit_workloads.sharding.batch_mesh``) beside the
submissions' (``algoperf_reinit.submission.batch_mesh``). A batch the workload
shards must enter the submission's jitted train step (its ``in_shardings`` come
from its own mesh) as it is: same devices in the same order, same axis name, so
no resharding and no second compile. Checked on the one CPU device of this process
and on 8 forced CPU devices in a subprocess (``XLA_FLAGS`` is read at start-up).
"""

import json
import os
import subprocess
import sys

import pytest

# Runs both here (1 device) and in the 8-device subprocess; prints one JSON line.
SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from algoperf_reinit.runner import CompileCounter
from algoperf_reinit.submission import batch_mesh, batch_sharded, make_train_step, replicated
from algoperf_reinit_workloads import get_workload, sharding

ours, theirs = sharding.batch_mesh(), batch_mesh()
workload = get_workload("digits", hidden_sizes=(16,))
params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
tx = optax.sgd(1e-2)
step = make_train_step(workload, tx, use_dropout_arg=False)
state = jax.device_put((params, model_state, tx.init(params)), replicated())
batches = [workload.train_batch(jax.random.PRNGKey(1), k, 32) for k in range(3)]
with CompileCounter() as counter:
    for batch in batches:
        out = step(*state, batch, jax.random.PRNGKey(2), 0.0, 0.0, 0.0)
        state = (out.params, out.model_state, out.opt_state)
    jax.block_until_ready(state)
reversed_mesh = Mesh(np.asarray(jax.devices()[::-1]), ("batch",))
print(json.dumps({
    "devices": jax.device_count(),
    "same_devices": ours.devices.tolist() == theirs.devices.tolist(),
    "device_ids": [d.id for d in ours.devices.flat],
    "axis_names": [list(ours.axis_names), list(theirs.axis_names)],
    "meshes_equal": ours == theirs and workload.mesh == theirs,
    "batch_sharding_equal": all(b["inputs"].sharding == batch_sharded() for b in batches),
    "replicated_equal": workload.replicated_sharding == replicated(),
    "shard_rows": sorted({s.data.shape[0] for s in batches[0]["inputs"].addressable_shards}),
    "step_compiles": [name for _, name, _ in counter.events].count("jit(train_step)"),
    "cache_size": step._cache_size(),
    "reversed_differs": NamedSharding(reversed_mesh, P("batch")) != batch_sharded(),
}))
"""


def _check(result: dict, devices: int) -> None:
    assert result["devices"] == devices
    assert result["same_devices"] and result["meshes_equal"], result
    assert result["device_ids"] == sorted(result["device_ids"])  # JAX's order, both sides
    assert result["axis_names"] == [["batch"], ["batch"]]
    assert result["batch_sharding_equal"] and result["replicated_equal"], result
    assert result["shard_rows"] == [32 // devices]
    assert result["step_compiles"] == 1 and result["cache_size"] == 1, result
    # The comparison can fail: another device order is another sharding.
    assert result["reversed_differs"] is (devices > 1)


def _run(devices: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_device_same_mesh_and_one_compile(capsys):
    exec(compile(SCRIPT, "<mesh script>", "exec"), {})
    _check(json.loads(capsys.readouterr().out.strip().splitlines()[-1]), devices=1)


@pytest.mark.parametrize("devices", [8])
def test_forced_cpu_devices_same_mesh_and_one_compile(devices):
    _check(_run(devices), devices=devices)
