"""Faults and bad input end with one clear `error:` line, and lose or leave nothing."""

import errno
import json
import os
import pathlib

import pytest

from tests.runner.conftest import delegating_submission, strict_json, submission

BASE = (f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
        "--max_global_steps=4", "--eval_every_steps=2")


def write(tmp_path, text, name="sub"):
    path = tmp_path / name / "submission.py"
    path.parent.mkdir()
    path.write_text(text)
    return path


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in pathlib.Path(root).rglob("*"))


def test_a_seed_too_large_for_int64_is_named(run_cli, tmp_path):
    code, _, err = run_cli(*BASE, f"--rng_seed={2**64}")
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: --rng_seed must be an int in [0, {2**63 - 1}], got {2**64}")
    assert not (tmp_path / "exp").exists()


def test_a_full_disk_is_an_error_line_and_leaves_no_temporary_file(run_cli, tmp_path,
                                                                  monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if pathlib.Path(dst).name == "checkpoint_2.msgpack":
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run_cli(*BASE)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: --experiment_dir must be a writable directory with free "
                          f"space, got '{tmp_path / 'exp'}'")
    assert "(No space left on device)" in err and "--resume_last_run" in err
    assert not [f for f in files_under(tmp_path / "exp") if "tmp" in f]
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert (trial / "checkpoint_1.msgpack").exists() and not (trial / ".lock").exists()
    monkeypatch.setattr(os, "replace", real_replace)
    code, out, err = run_cli(*BASE, "--resume_last_run")
    assert code == 0, err
    assert "from checkpoint_1.msgpack" in out


def test_a_read_only_directory_is_an_error_line(run_cli, tmp_path, monkeypatch):
    def mkdir(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    code, _, err = run_cli(*BASE)
    assert code == 2 and "Traceback" not in err
    assert "error: --experiment_dir must be a writable directory with free space" in err
    assert "(Read-only file system)" in err
    assert not (tmp_path / "exp").exists()


def test_update_params_with_the_wrong_signature_names_algoperfs_arguments(run_cli, tmp_path):
    source = pathlib.Path(submission("nadamw_baseline")).read_text()
    sub = write(tmp_path, source + "\n\ndef update_params(workload, params, batch, rng):\n"
                                   "    pass\n")
    code, _, err = run_cli(*BASE, f"--submission_path={sub}")
    assert code == 2 and "Traceback" not in err
    assert ("update_params must be a function AlgoPerf can call with the keyword arguments "
            "workload, current_param_container, current_params_types, model_state, "
            "hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step, "
            "rng, got 'update_params(workload, params, batch, rng)'") in err
    assert not (tmp_path / "exp").exists()


def test_a_syntax_error_in_the_submission_keeps_its_traceback(run_cli, tmp_path):
    sub = write(tmp_path, "def get_batch_size(name):\n    return 8\n\nx = = 1\n")
    code, _, err = run_cli(*BASE, f"--submission_path={sub}")
    assert code == 1
    assert "SyntaxError" in err and "x = = 1" in err  # the user's own traceback
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: the submission's import of '{sub}' raised SyntaxError")
    assert last.endswith("nothing was written: fix it and run again")
    assert not (tmp_path / "exp").exists()


def test_the_submissions_own_exception_names_the_trial_and_how_to_resume(run_cli, tmp_path):
    marker = tmp_path / "fault_on"
    marker.touch()
    sub = write(tmp_path, delegating_submission(
        submission("nadamw_baseline"),
        before=f"    if global_step == 3 and os.path.exists({str(marker)!r}):\n"
               "        raise RuntimeError('boom at three')"))
    code, _, err = run_cli(*BASE, f"--submission_path={sub}")
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert code == 1
    assert "raise RuntimeError('boom at three')" in err  # the user's frame
    assert err.strip().splitlines()[-1] == (
        "error: trial 1 failed in the submission's update_params (RuntimeError: boom at "
        f"three; traceback above); it left '{trial}' with a checkpoint at step 2: fix it and "
        "rerun with the same flags plus --resume_last_run to continue from there")
    assert not (trial / ".lock").exists() and not (trial / "summary.json").exists()
    marker.unlink()  # the fix
    code, _, err = run_cli(*BASE, f"--submission_path={sub}", "--resume_last_run")
    assert code == 0, err
    assert strict_json(trial / "summary.json")["global_steps"] == 4


def test_rejected_hyperparameters_leave_no_run_directory(run_cli, tmp_path):
    source = pathlib.Path(submission("nadamw_baseline")).read_text()
    sub = write(tmp_path, source + (
        "\n\ndef init_optimizer_state(workload, params, model_state, hyperparameters, rng):\n"
        "    raise ValueError(\"learning_rate must be a real number, got 'fast'\")\n"))
    code, _, err = run_cli(*BASE, f"--submission_path={sub}")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("error: trial_1: the submission's init_optimizer_state rejected "
                           "its input: learning_rate must be a real number, got 'fast'")
    assert not (tmp_path / "exp").exists()


def test_a_submission_folder_is_not_said_to_be_missing(run_cli, tmp_path):
    folder = pathlib.Path(submission("nadamw_baseline")).parent
    code, _, err = run_cli("--tuning_ruleset=self", f"--submission_path={folder}")
    assert code == 2 and "not found" not in err
    assert (f"--submission_path must be a submission .py file, not a directory, got "
            f"'{folder}'; did you mean '{folder / 'submission.py'}'?") in err


def test_more_trials_than_listed_points_is_an_error(run_cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps([{"learning_rate": 2e-3, "one_minus_beta1": 0.1,
                                  "beta2": 0.999, "weight_decay": 0.01,
                                  "warmup_factor": 0.05}]))
    code, _, err = run_cli(f"--submission_path={submission('nadamw_baseline')}",
                           f"--tuning_search_space={space}", "--num_tuning_trials=3")
    assert code == 2
    assert (f"--num_tuning_trials must be at most the 1 point(s) listed in '{space}', got 3; "
            "pass --num_tuning_trials=1 or list more points") in err
    assert not (tmp_path / "exp").exists()


def test_resume_without_a_run_says_so_and_another_cadence_is_refused(run_cli):
    code, out, err = run_cli(*BASE, "--resume_last_run")
    assert code == 0, err
    workload_dir = run_cli.study_dir / "digits_jax"
    assert f"--resume_last_run: no previous run in {workload_dir}: starting a new one" in out
    trial = workload_dir / "trial_1"
    (trial / "summary.json").unlink()  # as if killed before the end
    before = {p.name: p.read_bytes() for p in trial.iterdir()}
    code, _, err = run_cli(*BASE, "--resume_last_run", "--eval_every_steps=3")
    assert code == 2
    assert "belongs to another run (eval_every_steps: checkpoint 2 vs now 3)" in err
    assert {p.name: p.read_bytes() for p in trial.iterdir()} == before


def test_the_submissions_training_complete_error_ends_the_trial_cleanly(run_cli, tmp_path):
    sub = write(tmp_path, "class TrainingCompleteError(Exception):\n    pass\n\n"
                + delegating_submission(
                    submission("nadamw_baseline"),
                    before="    if global_step == 2:\n"
                           "        raise TrainingCompleteError('diverged: loss is nan')"))
    code, out, err = run_cli(*BASE, f"--submission_path={sub}")
    assert code == 0, err
    summary = strict_json(run_cli.study_dir / "digits_jax" / "trial_1" / "summary.json")
    assert summary["stop_reason"] == "training_complete"
    assert summary["stop_message"] == "diverged: loss is nan"
    assert summary["global_steps"] == 3
    assert ("the submission ended training at step 2 (TrainingCompleteError: diverged: loss "
            "is nan)") in out


@pytest.mark.parametrize("flag", ["--hparam_end_index=abc", "--eval_every_steps=ten"])
def test_bad_flag_values_write_nothing(run_cli, tmp_path, flag):
    code, _, err = run_cli(*BASE, flag)
    assert code == 2 and "_optional_int" not in err
    assert not (tmp_path / "exp").exists()
