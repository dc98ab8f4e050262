"""The README's DeepSpeed-user example runs as written."""

import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_deepspeed_user_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "DeepSpeedDataSampler(config" in b]
    namespace = {}
    exec(block, namespace)
    ids, batch, tokens = namespace["ids"], namespace["batch"], namespace["tokens"]
    assert ids.shape == (32,) and np.array_equal(np.asarray(batch["inputs"]), tokens[ids])
    assert namespace["state"]["curriculum_step"] == 1
