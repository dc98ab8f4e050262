"""submissions/data_efficient_lm end to end on our runner (short), and its API pieces."""

import importlib.util
import itertools
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBMISSION = ROOT / "submissions" / "data_efficient_lm" / "submission.py"


def load():
    spec = importlib.util.spec_from_file_location("_submission_data_efficient_lm", SUBMISSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_sizes():
    module = load()
    assert module.get_batch_size("stdlib_lm_4x256") == 32
    with pytest.raises(ValueError, match="no batch size for workload 'digits'"):
        module.get_batch_size("digits")


def test_runs_on_the_runner(tmp_path, capsys):
    from algoperf_reinit.runner import main

    kwargs = {"width": 16, "mlp_dim": 32, "num_eval_train_examples": 8}
    code = main([f"--experiment_dir={tmp_path}", "--experiment_name=e2e",
                 "--workload=stdlib_lm_4x256", f"--submission_path={SUBMISSION}",
                 "--tuning_ruleset=self", "--max_global_steps=3", "--eval_every_steps=100",
                 "--rng_seed=1", "--progress=none", f"--workload_kwargs={json.dumps(kwargs)}"])
    assert code == 0, capsys.readouterr()
    trial = tmp_path / "e2e" / "stdlib_lm_4x256_jax" / "trial_1"
    summary = json.loads((trial / "summary.json").read_text())
    assert summary["global_steps"] == 3
    assert summary["compilations"]["by_function"]["jit(train_step)"] == 1  # one kept length
    assert summary["final_eval"]["validation/loss"] > 0
    ltd = json.loads((trial / "random_ltd_summary.json").read_text())
    # Steps 0-2: curriculum length 64, kept length 64 (no dropping at that length).
    assert ltd["shapes"]["per_shape"] == {"64x64": {"steps": 3, "compilations": 1}}
    assert ltd["shapes"]["within_bound"] and ltd["shapes"]["bound"] == 8
    assert ltd["layer_tokens"] == 3 * 32 * 64 * 4  # what ran: 64 tokens through 4 layers
    # DeepSpeed's count: scheduled kept length 64 in layers 1, 2, max_value 256 in 0, 3
    assert ltd["deepspeed_consumed_layer_tokens"] == 3 * 32 * (64 * 2 + 256 * 2)


def test_joint_schedule_of_the_config():
    from algoperf_reinit_workloads import StdlibLM4x256Workload

    module = load()
    host_shapes = module._schedules(StdlibLM4x256Workload(num_eval_train_examples=8))
    _, _, starts, shapes, bound = host_shapes
    assert bound == len(set(shapes)) == 8  # 25 (length, kept) pairs in one bound of 8
    assert starts[0] == 0 and shapes[0] == (64, 64) and shapes[-1] == (256, 256)
    assert all(k <= s for s, k in shapes)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(shapes))
