"""The runner on 8 forced CPU devices: batch sizes must divide the device count."""

import os
import subprocess
import sys

from tests.runner.conftest import submission


def test_batch_size_not_divisible_by_the_devices_is_named(tmp_path):
    sub = tmp_path / "submission.py"
    sub.write_text(open(submission("nadamw_baseline")).read()
                   + "\n\ndef get_batch_size(workload_name):\n    return 12\n")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "algoperf_reinit.runner", f"--submission_path={sub}",
         f"--experiment_dir={tmp_path / 'exp'}", "--tuning_ruleset=self"],
        env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "get_batch_size('digits') returned 12, which is not divisible by the 8 local" in out.stderr
    assert not (tmp_path / "exp").exists()


def test_a_short_run_on_8_devices_compiles_the_step_once(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "algoperf_reinit.runner",
         f"--submission_path={submission('nadamw_reinit')}", "--tuning_ruleset=self",
         f"--experiment_dir={tmp_path / 'exp'}", "--experiment_name=s",
         "--max_global_steps=20", "--eval_every_steps=10", "--progress=none"],
        env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "on 8 device(s)" in out.stdout
    assert "1 train-step compilation(s)" in out.stdout
