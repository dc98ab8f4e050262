"""Compilations on the clock after warm-up are counted and reported in summary.json."""

from tests.runner.conftest import delegating_submission, strict_json, submission

BASE = ("--tuning_ruleset=self", "--max_global_steps=6", "--eval_every_steps=3")


def test_a_compile_after_warm_up_is_reported_by_name(run_cli, tmp_path):
    sub = tmp_path / "late" / "submission.py"
    sub.parent.mkdir()
    sub.write_text("import jax, jax.numpy as jnp\n\n\ndef late_function(x):\n"
                   "    return x * 2\n\n\n" + delegating_submission(
                       submission("nadamw_baseline"),
                       before="    if global_step == 4:\n"
                              "        jax.block_until_ready(jax.jit(late_function)("
                              "jnp.ones(7)))"))
    code, out, err = run_cli(*BASE, f"--submission_path={sub}")
    assert code == 0, err
    summary = strict_json(run_cli.study_dir / "digits_jax" / "trial_1" / "summary.json")
    assert summary["compilations_after_warmup"] == summary["compilations"][
        "timed_after_warmup"] >= 1
    assert summary["compilations"]["functions_after_warmup"].get("jit(late_function)") == 1
    assert summary["compilations"]["timed_after_warmup_seconds"] > 0
    assert f"{summary['compilations_after_warmup']} compilation(s) on the clock after " \
           "warm-up" in out


def test_the_baseline_compiles_nothing_after_warm_up(run_cli):
    code, out, err = run_cli(*BASE, f"--submission_path={submission('nadamw_baseline')}")
    assert code == 0, err
    summary = strict_json(run_cli.study_dir / "digits_jax" / "trial_1" / "summary.json")
    assert summary["compilations_after_warmup"] == 0
    assert summary["compilations"]["functions_after_warmup"] == {}
    assert "0 compilation(s) on the clock after warm-up" in out


def test_the_progress_lines_show_phases_and_label_the_figures_step(run_cli):
    code, out, err = run_cli(*BASE, f"--submission_path={submission('nadamw_baseline')}")
    assert code == 0, err
    lines = out.splitlines()
    phases = [line for line in lines if line.endswith("\u2026")]
    assert phases == ["step 0/6 | initialising\u2026", "step 0/6 | compiling\u2026",
                      "step 1/6 | evaluating\u2026"]
    steps = [line for line in lines if line.startswith("step ") and " @ step " in line]
    assert steps and all("validation/accuracy" in line for line in steps[1:])
