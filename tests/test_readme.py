"""The README's Python examples run as written (with a tiny model supplied for the loop)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]

PRELUDE = '''
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

class Model(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(8)(x)))

class Workload:
    def init_model_fn(self, rng):
        return Model().init(rng, jnp.zeros((1, 3)))["params"], {}

workload = Workload()
params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))

def loss(p, batch):
    return jnp.mean((Model().apply({"params": p}, batch[0]) - batch[1]) ** 2)

def _batches():
    rng = np.random.default_rng(0)
    while True:
        x = rng.normal(size=(16, 3)).astype(np.float32)
        yield x, x.sum(1, keepdims=True)

batches, eval_results = _batches(), []
'''


def python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_has_the_two_examples():
    assert len(python_blocks()) >= 2


def test_schedule_example_runs():
    namespace = {}
    exec(python_blocks()[0], namespace)
    assert namespace["reinit_steps"] == [3333, 6666]


def test_reinit_loop_example_runs():
    import jax

    loop = python_blocks()[1].replace("range(3000)", "range(40)")
    namespace = {"jax": jax}
    exec(python_blocks()[1].split("\n", 1)[0] + "\n" + PRELUDE + loop, namespace)
    assert int(namespace["state"].cycle) == 0
    assert namespace["out"].params is not None
