"""submissions/data_efficient_lm end to end on our runner (short), and its API pieces."""

import importlib.util
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
    assert ltd["shapes"]["per_shape"] == {"64": {"steps": 3, "compilations": 1}}
    assert ltd["shapes"]["within_bound"]
    # layers 1, 2 keep 64 of 256 tokens, layers 0, 3 all: 32 * (64 * 2 + 256 * 2) per step
    assert ltd["layer_tokens"] == ltd["deepspeed_consumed_layer_tokens"] == 3 * 32 * 640
