"""Resume integrity: the trial lock, torn CSV lines, checkpoint checksums and fallback."""

import shutil

import pytest

from algoperf_reinit.runner import CheckpointError, eval_metric_rows
from algoperf_reinit.runner.checkpoint import find_checkpoints, load_checkpoint
from algoperf_reinit.runner.lock import LOCK_NAME, TrialLockedError, trial_lock
from algoperf_reinit.runner.metrics import repair_torn_tail
from tests.runner.conftest import submission

ARGS = (f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
        "--max_global_steps=10", "--eval_every_steps=5")


@pytest.fixture
def finished(run_cli):
    """A finished 10-step run (checkpoints 5 and 10) and a pristine copy of its trial."""
    code, _, err = run_cli(*ARGS)
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    copy = trial.parent.parent.parent / "pristine"
    shutil.copytree(trial, copy)
    return trial, copy


def unfinish(trial):
    """As if the process had been killed just before its final checkpoint."""
    (trial / "summary.json").unlink()
    (trial / "checkpoint_10.msgpack").unlink()


def test_keeps_the_newest_n_checkpoints(run_cli, finished):
    trial, _ = finished
    assert [s for s, _ in find_checkpoints(trial)] == [5, 10]
    shutil.rmtree(trial.parent)
    assert run_cli(*ARGS, "--eval_every_steps=2", "--keep_checkpoints=3")[0] == 0
    assert [s for s, _ in find_checkpoints(trial)] == [6, 8, 10]
    assert not (trial / LOCK_NAME).exists()


def test_a_second_run_on_a_locked_trial_is_refused(run_cli, finished):
    trial, _ = finished
    unfinish(trial)
    before = {p.name: p.read_bytes() for p in trial.iterdir()}
    with trial_lock(trial):
        code, _, err = run_cli(*ARGS, "--resume_last_run")
        with pytest.raises(TrialLockedError, match="in use by another run"):
            with trial_lock(trial):
                pass
    assert code == 2
    assert "is in use by another run" in err and "pid" in err and LOCK_NAME in err
    after = {p.name: p.read_bytes() for p in trial.iterdir()}
    assert after == before


def test_a_stale_lock_of_a_dead_process_is_taken_over(run_cli, finished):
    trial, pristine = finished
    unfinish(trial)
    (trial / LOCK_NAME).write_text("otherhost pid 4242\n")
    code, out, err = run_cli(*ARGS, "--resume_last_run")
    assert code == 0, err
    assert "taking over the stale lock of otherhost pid 4242" in out
    assert not (trial / LOCK_NAME).exists()
    assert eval_metric_rows(trial) == eval_metric_rows(pristine)


def test_a_torn_last_csv_line_is_repaired_on_resume(run_cli, finished):
    trial, pristine = finished
    unfinish(trial)
    path = trial / "eval_measurements.csv"
    last = path.read_text().splitlines()[-1]
    with path.open("a") as f:
        f.write(last[:20])  # a crash mid-write of a row, before its global_step cell
    code, out, err = run_cli(*ARGS, "--resume_last_run")
    assert code == 0, err
    assert "eval_measurements.csv: its last line was cut off mid-write" in out
    assert path.read_text().count("\n") == pristine.joinpath(path.name).read_text().count("\n")
    assert eval_metric_rows(trial) == eval_metric_rows(pristine)


def test_repair_torn_tail(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n3,")
    assert repair_torn_tail(path) == "3,"
    assert path.read_text() == "a,b\n1,2\n"
    assert repair_torn_tail(path) is None and repair_torn_tail(tmp_path / "none") is None


def flip_array_bytes(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # inside the parameters' array data
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    path.write_bytes(bytes(data))


def test_changed_array_bytes_fail_the_checksum(finished):
    trial, _ = finished
    path = trial / "checkpoint_10.msgpack"
    load_checkpoint(path)
    flip_array_bytes(path)
    with pytest.raises(CheckpointError, match="SHA-256 checksum does not match"):
        load_checkpoint(path)


def test_resume_falls_back_to_the_newest_intact_checkpoint(run_cli, finished):
    trial, pristine = finished
    (trial / "summary.json").unlink()
    flip_array_bytes(trial / "checkpoint_10.msgpack")
    code, out, err = run_cli(*ARGS, "--resume_last_run")
    assert code == 0, err
    assert ("checkpoint_10.msgpack is unusable (checkpoint" in out
            and "resuming from the older checkpoint_5.msgpack instead; the bad file is kept "
                "as checkpoint_10.msgpack.corrupt" in out)
    assert (trial / "checkpoint_10.msgpack.corrupt").exists()
    assert eval_metric_rows(trial) == eval_metric_rows(pristine)
    a = load_checkpoint(trial / "checkpoint_10.msgpack").arrays
    b = load_checkpoint(pristine / "checkpoint_10.msgpack").arrays
    import jax
    import numpy as np

    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_no_intact_checkpoint_is_a_clear_error_and_changes_nothing(run_cli, finished):
    trial, _ = finished
    (trial / "summary.json").unlink()
    for _, path in find_checkpoints(trial):
        flip_array_bytes(path)
    before = {p.name: p.read_bytes() for p in trial.iterdir()}
    code, _, err = run_cli(*ARGS, "--resume_last_run")
    assert code == 2
    assert "checkpoint_10.msgpack' is corrupt (its SHA-256 checksum does not match" in err
    assert "no older intact checkpoint to fall back to (2 checkpoint(s)" in err
    assert {p.name: p.read_bytes() for p in trial.iterdir()} == before
