"""End-to-end runs of the runner: AlgoPerf's layout, stopping rules, summary, errors."""

import csv
import json

import pytest

from tests.runner.conftest import strict_json, submission

EVAL_COLUMNS = {
    "accumulated_eval_time", "accumulated_logging_time", "accumulated_submission_time",
    "global_step", "preemption_count", "score", "total_duration", "train/accuracy",
    "train/loss", "validation/accuracy", "validation/loss", "validation/num_examples",
    "test/accuracy", "test/loss", "test/num_examples",
}


def rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_external_trials_write_algoperf_layout(run_cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps([{"learning_rate": 2e-3, "one_minus_beta1": 0.1, "beta2": 0.999,
                                  "weight_decay": 0.01, "warmup_factor": 0.05},
                                 {"learning_rate": 1e-3, "one_minus_beta1": 0.1, "beta2": 0.99,
                                  "weight_decay": 0.01, "warmup_factor": 0.05}]))
    code, out, err = run_cli("--workload=digits", f"--submission_path={submission('nadamw_baseline')}",
                             f"--tuning_search_space={space}", "--num_tuning_trials=2",
                             "--max_global_steps=30", "--eval_every_steps=10")
    assert code == 0, err
    workload_dir = tmp_path / "exp" / "study" / "digits_jax"
    assert sorted(p.name for p in workload_dir.iterdir()) == ["trial_1", "trial_2"]
    for k, lr in ((1, 2e-3), (2, 1e-3)):
        trial = workload_dir / f"trial_{k}"
        assert {"hparams.json", "flags_0.json", "meta_data_0.json", "eval_measurements.csv",
                "measurements.csv", "lr_schedule.png", "events.csv", "summary.json",
                "checkpoint_30.msgpack"} <= {p.name for p in trial.iterdir()}
        assert strict_json(trial / "hparams.json")["learning_rate"] == lr
        assert strict_json(trial / "flags_0.json")["max_global_steps"] == 30
        meta = strict_json(trial / "meta_data_0.json")
        assert meta["rng_seed"] == 1 and meta["workload.step_hint"] == 2000
        evals = rows(trial / "eval_measurements.csv")
        assert set(evals[0]) == EVAL_COLUMNS
        assert [int(r["global_step"]) for r in evals] == [1, 10, 20, 30]
        measurements = rows(trial / "measurements.csv")
        assert measurements[-1]["score"] == evals[-1]["score"] or float(
            measurements[-1]["score"]) >= float(evals[-1]["score"])
        assert any(r["loss"] for r in measurements)  # the submission's metrics_logger rows
        summary = strict_json(trial / "summary.json")
        assert summary["global_steps"] == 30 and summary["num_evals"] == 4
        assert summary["target_metric"] == "validation/accuracy"
        assert summary["train_step_compilations"] == 1
        assert summary["stop_reason"] == "max_global_steps"
        hit = [r for r in evals if float(r["validation/accuracy"]) >= 0.97]
        assert summary["reached"] is bool(hit)
        if hit:
            assert summary["steps_to_target"] == int(hit[0]["global_step"])
            assert summary["time_to_target_sec"] == float(hit[0]["score"])
        else:
            assert summary["time_to_target_sec"] is None and summary["steps_to_target"] is None
    assert "eval CSV:" in out and "lr_schedule.png" in out


def test_stops_at_the_targets_unless_told_to_continue(run_cli):
    args = ("--workload=digits", f"--submission_path={submission('nadamw_baseline')}",
            "--tuning_ruleset=self", "--eval_every_steps=20", "--max_global_steps=400")
    code, out, err = run_cli(*args)
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert not (trial / "hparams.json").exists()  # self-tuning: no hyperparameters
    summary = strict_json(trial / "summary.json")
    assert summary["stop_reason"] == "targets_reached", out
    assert summary["reached"] and summary["global_steps"] < 400
    assert summary["global_steps"] >= summary["steps_to_target"]
    assert "target met at the eval of step" in out

    code, out, err = run_cli(*args, "--continue_past_target", "--overwrite")
    assert code == 0, err
    summary = strict_json(trial / "summary.json")
    assert summary["stop_reason"] == "max_global_steps" and summary["global_steps"] == 400
    assert summary["reached"] and summary["steps_to_target"] < 400


def test_default_job_shows_cycles_resets_and_an_early_stop(run_cli):
    from algoperf_reinit.runner import DEFAULT_JOB_ARGS

    args = [a for a in DEFAULT_JOB_ARGS if not a.startswith("--submission_path")]
    code, out, err = run_cli(*args, f"--submission_path={submission('nadamw_reinit')}")
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    events = rows(trial / "events.csv")
    kinds = [e["kind"] for e in events]
    assert kinds.count("reset") >= 2 and kinds.count("early_stop") >= 1, kinds
    last_boundaries = json.loads(events[-1]["new_boundaries"])
    assert len(last_boundaries) - 1 >= 3  # at least 3 cycles
    summary = strict_json(trial / "summary.json")
    assert summary["reached"] and summary["global_steps"] == 2000
    assert summary["train_step_compilations"] == 1
    # On the clock after warm-up: the reset and the plateau update, each compiled once,
    # also when a reset follows an early stop (the new table keeps the old one's sharding).
    after = summary["compilations"]["functions_after_warmup"]
    assert summary["compilations_after_warmup"] <= 2 and max(after.values()) == 1, after
    assert "event @ step" in out and "early_stop" in out
    # An early stop writes schedule_history.json: --overwrite must know it as the run's.
    assert (trial / "schedule_history.json").exists()
    # The trial's picture is drawn at its end and its path printed; --noplot_run skips it
    # (and --overwrite knows it as the runner's own file).
    assert (trial / "run_metrics.png").read_bytes().startswith(b"\x89PNG")
    assert f"run plot:      {trial / 'run_metrics.png'}" in out
    code, out, err = run_cli(*args, f"--submission_path={submission('nadamw_reinit')}",
                             "--overwrite", "--max_global_steps=5", "--noplot_run")
    assert code == 0, err
    assert not (trial / "run_metrics.png").exists() and "run plot:" not in out


@pytest.mark.parametrize(("args", "message"), [
    (("--submission_path=nowhere/submission.py",), "submission file 'nowhere/submission.py' not found"),
    (("--workload=imagenet",), "--workload must be one of 'digits', 'stdlib_lm', 'stdlib_lm_4x256', got 'imagenet'"),
    (("--workload_kwargs={\"bogus\": 1}",), "do not fit workload 'digits'"),
])
def test_bad_input_exits_2_and_writes_nothing(run_cli, tmp_path, args, message):
    code, _, err = run_cli(f"--submission_path={submission('nadamw_baseline')}", *args)
    assert code == 2
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "exp").exists()


def test_bad_search_space_exits_2_and_writes_nothing(run_cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text('{"learning_rate": {"min": 1e-3, "max": 1e-2, "scaling": "log"},}')
    code, _, err = run_cli(f"--submission_path={submission('nadamw_baseline')}",
                           f"--tuning_search_space={space}")
    assert code == 2 and "space.json: invalid JSON at line 1" in err
    assert not (tmp_path / "exp").exists()


def test_submission_without_the_api_is_named(run_cli, tmp_path):
    bad = tmp_path / "submission.py"
    bad.write_text("def get_batch_size(name):\n    return 8\n")
    code, _, err = run_cli(f"--submission_path={bad}")
    assert code == 2
    assert "does not define the required function(s) ['init_optimizer_state'" in err


def test_bad_batch_size_is_named(run_cli, tmp_path):
    sub = tmp_path / "submission.py"
    sub.write_text((__import__("pathlib").Path(submission("nadamw_baseline")).read_text())
                   + "\n\ndef get_batch_size(workload_name):\n    return 0\n")
    code, _, err = run_cli(f"--submission_path={sub}", "--tuning_ruleset=self")
    assert code == 2 and "get_batch_size('digits') must be an int >= 1, got 0" in err


def test_a_batch_size_of_the_wrong_kind_is_a_type_error_and_exits_2(run_cli, tmp_path):
    sub = tmp_path / "submission.py"
    sub.write_text((__import__("pathlib").Path(submission("nadamw_baseline")).read_text())
                   + "\n\ndef get_batch_size(workload_name):\n    return 128.0\n")
    code, _, err = run_cli(f"--submission_path={sub}", "--tuning_ruleset=self")
    assert code == 2
    assert "get_batch_size('digits') must be an int, got 128.0 of type float" in err
    from algoperf_reinit.runner.loading import resolve_batch_size

    with __import__("pytest").raises(TypeError, match="must be an int, got '8' of type str"):
        resolve_batch_size(lambda name: "8", "digits", "digits", num_devices=1)


def test_existing_run_dir_needs_overwrite_or_resume(run_cli, tmp_path):
    args = (f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
            "--max_global_steps=5", "--eval_every_steps=5")
    assert run_cli(*args)[0] == 0
    code, _, err = run_cli(*args)
    assert code == 2 and "already exists; pass --resume_last_run" in err
    code, _, err = run_cli(*args, "--overwrite")
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    before = {p.name: p.read_bytes() for p in trial.iterdir()}
    code, out, err = run_cli(*args, "--resume_last_run")
    assert code == 0, err
    assert "trial_1 already finished at step 5" in out
    assert {p.name: p.read_bytes() for p in trial.iterdir()} == before


def test_overwrite_refuses_a_directory_it_did_not_write(run_cli, tmp_path):
    workload_dir = tmp_path / "exp" / "study" / "digits_jax"
    (workload_dir / "trial_1").mkdir(parents=True)
    (workload_dir / "trial_1" / "thesis.tex").write_text("precious")
    code, _, err = run_cli(f"--submission_path={submission('nadamw_baseline')}", "--overwrite")
    assert code == 2 and "refusing to delete" in err and "thesis.tex" in err
    assert (workload_dir / "trial_1" / "thesis.tex").read_text() == "precious"


TINY_LM = ('{"seq_len": 32, "width": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64, '
           '"num_eval_train_examples": 64}')


@pytest.mark.parametrize("name", ["nadamw_baseline", "nadamw_cycles", "nadamw_reinit"])
@pytest.mark.parametrize("workload", ["digits", "stdlib_lm"])
def test_every_submission_learns_on_every_workload(run_cli, name, workload):
    extra = [f"--workload_kwargs={TINY_LM}"] if workload == "stdlib_lm" else []
    code, _, err = run_cli(f"--workload={workload}", f"--submission_path={submission(name)}",
                           "--tuning_ruleset=self", "--max_global_steps=40",
                           "--eval_every_steps=20", *extra)
    assert code == 0, err
    trial = run_cli.study_dir / f"{workload}_jax" / "trial_1"
    losses = [float(r["validation/loss"]) for r in rows(trial / "eval_measurements.csv")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert strict_json(trial / "summary.json")["train_step_compilations"] == 1


def test_rng_seed_0_draws_a_random_seed_and_records_it(run_cli):
    code, out, err = run_cli(f"--submission_path={submission('nadamw_baseline')}",
                             "--tuning_ruleset=self", "--rng_seed=0", "--max_global_steps=2",
                             "--eval_every_steps=2")
    assert code == 0, err
    match = __import__("re").search(r"--rng_seed=0: using the random seed (\d+)", out)
    assert match, out
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert strict_json(trial / "meta_data_0.json")["rng_seed"] == int(match.group(1)) > 0


def test_submissions_end_the_run_when_their_schedule_ends(run_cli, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps([{"learning_rate": 2e-3, "budget_fraction": 0.02}]))  # 40 steps
    code, _, err = run_cli(f"--submission_path={submission('nadamw_reinit')}",
                           f"--tuning_search_space={space}", "--workload=digits",
                           "--eval_every_steps=10", "--continue_past_target")
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    summary = strict_json(trial / "summary.json")
    # AlgoPerf counts the step whose update raised TrainingCompleteError, then evaluates.
    assert summary["stop_reason"] == "training_complete" and summary["global_steps"] == 41
    assert [int(r["global_step"]) for r in rows(trial / "eval_measurements.csv")][-1] == 41
