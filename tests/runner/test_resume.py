"""Resume: a run SIGKILLed mid-way and resumed ends exactly like an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from algoperf_reinit.runner import CheckpointError, eval_metric_rows, read_csv
from algoperf_reinit.runner.checkpoint import find_checkpoints, load_checkpoint
from tests.runner.conftest import delegating_submission, strict_json, submission

# A submission that delegates to nadamw_reinit and sleeps a little in every step, so
# the run is slow enough to be killed mid-way.
STEPS = 700


def args(experiment_dir, sub, *extra):
    # The reset at step 500 comes before the kill (>= 530), later events after it.
    return [sys.executable, "-m", "algoperf_reinit.runner", "--workload=digits",
            f"--submission_path={sub}", f"--experiment_dir={experiment_dir}",
            "--experiment_name=study", "--tuning_ruleset=self", f"--max_global_steps={STEPS}",
            "--eval_every_steps=10", "--continue_past_target", "--progress=lines", *extra]


def write_slow(tmp_path, sleep):
    sub = tmp_path / "slow" / "submission.py"
    sub.parent.mkdir()
    sub.write_text(delegating_submission(submission("nadamw_reinit"),
                                         before=f"    time.sleep({sleep})"))
    return sub


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("resume")
    sub = write_slow(tmp_path, 0.004)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full = subprocess.run(args(tmp_path / "full", sub), env=env, capture_output=True,
                          text=True, timeout=300)
    assert full.returncode == 0, full.stderr

    killed_dir = tmp_path / "killed"
    trial = killed_dir / "study" / "digits_jax" / "trial_1"
    proc = subprocess.Popen(args(killed_dir, sub), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        found = find_checkpoints(trial)
        if found and found[-1][0] >= 530:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = find_checkpoints(trial)[-1][0]
    assert killed_at < STEPS and not (trial / "summary.json").exists()
    resumed = subprocess.run(args(killed_dir, sub, "--resume_last_run"), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    return {"full": tmp_path / "full" / "study" / "digits_jax" / "trial_1", "resumed": trial,
            "killed_at": killed_at, "sub": sub, "tmp": tmp_path, "env": env,
            "stdout": resumed.stdout}


def test_resumed_run_ends_with_the_same_parameters(runs):
    full = load_checkpoint(runs["full"] / f"checkpoint_{STEPS}.msgpack").arrays
    resumed = load_checkpoint(runs["resumed"] / f"checkpoint_{STEPS}.msgpack").arrays
    import jax

    for name in ("params", "model_state", "optimizer_state"):
        a, b = jax.tree.leaves(full[name]), jax.tree.leaves(resumed[name])
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
    assert f"from checkpoint_{runs['killed_at']}.msgpack" in runs["stdout"]


def test_resumed_run_has_the_same_eval_rows_and_events(runs):
    full_rows, resumed_rows = eval_metric_rows(runs["full"]), eval_metric_rows(runs["resumed"])
    assert len(full_rows) == STEPS // 10 + 1
    assert resumed_rows == full_rows
    events = read_csv(runs["full"] / "events.csv")
    assert any(e["kind"] == "reset" for e in events)
    assert read_csv(runs["resumed"] / "events.csv") == events
    history = [(runs[k] / "schedule_history.json") for k in ("full", "resumed")]
    assert [h.exists() for h in history] == [h.exists() for h in history[:1]] * 2
    if history[0].exists():
        assert history[0].read_text() == history[1].read_text()
    summary = strict_json(runs["resumed"] / "summary.json")
    assert summary["preemption_count"] == 1 and summary["global_steps"] == STEPS
    assert (runs["resumed"] / "flags_1.json").exists()
    assert (runs["resumed"] / "meta_data_1.json").exists()
    assert strict_json(runs["resumed"] / "meta_data_1.json")["resumed_from_step"] == runs[
        "killed_at"]


def test_mismatched_checkpoint_is_a_clear_error_and_deletes_nothing(runs):
    before = sorted(p.name for p in runs["resumed"].iterdir())
    out = subprocess.run(args(runs["tmp"] / "killed", runs["sub"], "--resume_last_run",
                              "--rng_seed=7"), env=runs["env"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "belongs to another run (rng_seed: checkpoint 1 vs now 7" in out.stderr
    assert sorted(p.name for p in runs["resumed"].iterdir()) == before


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, run_cli):
    args_ = (f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
             "--max_global_steps=10", "--eval_every_steps=5", "--keep_checkpoints=1")
    assert run_cli(*args_)[0] == 0
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    path = trial / "checkpoint_10.msgpack"
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = run_cli(*args_, "--resume_last_run")
    assert code == 2 and "checkpoint_10.msgpack" in err and "is corrupt" in err
    assert path.exists() and len(path.read_bytes()) == 100
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_checkpoint(path)


def test_resume_without_a_checkpoint_keeps_the_results(run_cli):
    args_ = (f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
             "--max_global_steps=4", "--eval_every_steps=2", "--nosave_checkpoints")
    assert run_cli(*args_)[0] == 0
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    before = {p.name: p.read_bytes() for p in trial.iterdir()}
    code, _, err = run_cli(*args_, "--resume_last_run")
    assert code == 2 and "holds results but no checkpoint" in err
    assert {p.name: p.read_bytes() for p in trial.iterdir()} == before
