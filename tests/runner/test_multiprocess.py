"""Two processes on loopback through ``jax.distributed``, 4 forced CPU devices each.

The same run gives the same eval rows on 2 processes x 4 devices as on 1 process
x 8 devices and on 1 device (within the rtol of
``tests/submissions/test_multidevice.py``), and a 2-process run killed (both
processes SIGKILL themselves after the checkpoint of step 3) and resumed equals
an uninterrupted one exactly. Every process of a run is a subprocess started
and stopped here.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from algoperf_reinit.runner import eval_metric_rows
from algoperf_reinit.runner.checkpoint import find_checkpoints
from tests.runner.conftest import ROOT, delegating_submission, strict_json, submission

STEPS = 6
ARGS = ["-m", "algoperf_reinit.runner", "--workload=digits", "--tuning_ruleset=self",
        f"--max_global_steps={STEPS}", "--eval_every_steps=3", "--experiment_name=s",
        '--workload_kwargs={"hidden_sizes": [32]}', "--progress=lines", "--continue_past_target"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(devices):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def run_processes(exp, sub, *extra, processes=2, devices=4):
    """Runs one run as ``processes`` processes; returns their (returncode, stderr)."""
    port = free_port()
    dist = [] if processes == 1 else [f"--coordinator_address=127.0.0.1:{port}",
                                      f"--num_processes={processes}"]
    procs = [subprocess.Popen(
        [sys.executable, *ARGS, f"--submission_path={sub}", f"--experiment_dir={exp}", *dist,
         *([f"--process_id={i}"] if processes > 1 else []), *extra],
        env=env(devices), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True) for i in range(processes)]
    deadline = time.monotonic() + 240
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        results.append((proc.returncode, err))
    return results


def trial(exp):
    return exp / "s" / "digits_jax" / "trial_1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiprocess")
    base = submission("nadamw_baseline")
    marker = tmp / "kill_on"
    killer = tmp / "killer" / "submission.py"
    killer.parent.mkdir()
    killer.write_text(delegating_submission(base, before=(
        f"    if global_step == 4 and os.path.exists({str(marker)!r}):\n"
        "        import signal\n"
        "        os.kill(os.getpid(), signal.SIGKILL)")))
    out = {}
    for name, processes, devices in (("one", 1, 1), ("eight", 1, 8), ("two", 2, 4)):
        results = run_processes(tmp / name, killer, processes=processes, devices=devices)
        assert all(code == 0 for code, _ in results), results
        out[name] = trial(tmp / name)
    marker.touch()
    killed = run_processes(tmp / "killed", killer)
    assert [code for code, _ in killed] == [-signal.SIGKILL] * 2, killed
    out["killed_at"] = [s for s, _ in find_checkpoints(trial(tmp / "killed"))]
    marker.unlink()
    resumed = run_processes(tmp / "killed", killer, "--resume_last_run")
    assert all(code == 0 for code, _ in resumed), resumed
    out["resumed"] = trial(tmp / "killed")
    return out


def numbers(rows):
    return np.array([[float(v) for _, v in sorted(r.items())] for r in rows])


def test_two_processes_match_one_process_and_one_device(runs):
    two, eight, one = (eval_metric_rows(runs[k]) for k in ("two", "eight", "one"))
    assert [int(r["global_step"]) for r in two] == [1, 3, 6]
    assert [sorted(r) for r in two] == [sorted(r) for r in eight] == [sorted(r) for r in one]
    np.testing.assert_allclose(numbers(two), numbers(eight), rtol=2e-3)
    np.testing.assert_allclose(numbers(two), numbers(one), rtol=2e-3)
    meta = strict_json(runs["two"] / "meta_data_0.json")
    assert len(meta["jax_devices"]) == 8 and meta["local_device_count"] == 4


def test_only_process_0_writes_and_the_step_compiles_once(runs):
    summary = strict_json(runs["two"] / "summary.json")
    assert summary["train_step_compilations"] == 1 and summary["global_steps"] == STEPS
    names = {p.name for p in runs["two"].iterdir()}
    assert {"flags_0.json", "meta_data_0.json", "summary.json"} <= names
    assert not [n for n in names if "tmp" in n or n.endswith("_1.json")]
    rows = eval_metric_rows(runs["two"])
    assert len(rows) == 3  # one row per eval, not one per process


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(runs):
    assert runs["killed_at"] == [1, 3]  # killed at step 4, after the checkpoint of step 3
    assert eval_metric_rows(runs["resumed"]) == eval_metric_rows(runs["two"])
    summary = strict_json(runs["resumed"] / "summary.json")
    assert summary["preemption_count"] == 1 and summary["global_steps"] == STEPS
    import jax

    from algoperf_reinit.runner.checkpoint import load_checkpoint

    a = load_checkpoint(runs["resumed"] / f"checkpoint_{STEPS}.msgpack").arrays
    b = load_checkpoint(runs["two"] / f"checkpoint_{STEPS}.msgpack").arrays
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
