"""The runner's flags: AlgoPerf's names, absl-style booleans, the default job, errors."""

import datetime
import pathlib

import pytest

from algoperf_reinit.runner import DEFAULT_JOB_ARGS, parse_flags


def test_no_flags_is_the_default_job():
    flags = parse_flags([], now=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    assert flags.workload == "digits"
    assert flags.submission_path.endswith("nadamw_reinit/submission.py")
    assert flags.continue_past_target and flags.eval_every_steps and flags.max_global_steps
    assert flags.experiment_dir == "./runs" and flags.experiment_name == "20260102T030405Z"
    assert flags.rng_seed == 1 and flags.num_tuning_trials == 1
    assert flags == parse_flags(list(DEFAULT_JOB_ARGS), now=datetime.datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))


def test_default_job_takes_other_flags_on_top():
    flags = parse_flags(["--experiment_dir=elsewhere", "--nocontinue_past_target"])
    assert flags.workload == "digits" and flags.eval_every_steps == 20
    assert flags.experiment_dir == "elsewhere" and not flags.continue_past_target


def test_explicit_flags_do_not_continue_past_the_target():
    flags = parse_flags(["--workload=stdlib_lm"])
    assert not flags.continue_past_target and flags.eval_every_steps is None
    assert flags.search_space_path == pathlib.Path(
        "submissions/nadamw_reinit/tuning_search_space.json")


@pytest.mark.parametrize(("argv", "value"), [
    (["--overwrite"], True), (["--overwrite=false"], False), (["--overwrite", "true"], True),
    (["--nooverwrite"], False), (["--overwrite=1"], True),
])
def test_booleans_in_absl_spellings(argv, value):
    assert parse_flags(["--workload=digits", *argv]).overwrite is value


def test_save_checkpoints_defaults_on_and_can_be_switched_off():
    assert parse_flags(["--workload=digits"]).save_checkpoints
    assert not parse_flags(["--nosave_checkpoints"]).save_checkpoints


@pytest.mark.parametrize(("argv", "message"), [
    (["--workload=digits", "--num_tuning_trials=0"], "--num_tuning_trials must be an int >= 1, got 0"),
    (["--eval_every_steps=-3"], "--eval_every_steps must be an int >= 1, got -3"),
    (["--rng_seed=-1"], r"--rng_seed must be an int in \[0, 9223372036854775807\], got -1; "
                        "0 draws a random seed"),
    ([f"--rng_seed={2**63}"], r"--rng_seed must be an int in \[0, 9223372036854775807\], got "
                              f"{2**63}; 0 draws a random seed; JAX's PRNGKey takes an int64"),
    (["--max_global_steps=abc"], "argument --max_global_steps: the value must be an int or "
                                 "'none', got 'abc'"),
    (["--num_tuning_trials=two"], "argument --num_tuning_trials: the value must be an int, "
                                  "got 'two'"),
    (["--keep_checkpoints=0"], "--keep_checkpoints must be an int >= 1, got 0"),
    (["--hparam_start_index=-1"], "--hparam_start_index must be an int >= 0, got -1"),
    (["--overwrite", "--resume_last_run"], "exclude each other"),
    (["--workload_kwargs=[1]"], "--workload_kwargs must be a JSON object"),
    (["--workload_kwargs={x}"], "--workload_kwargs must be a JSON object"),
    (["--tuning_ruleset=both"], "invalid choice: 'both'"),
    (["--frobnicate=1"], "unrecognized arguments: --frobnicate=1"),
    (["--experiment_name=a/b"], "--experiment_name must be a plain directory name"),
    (["--overwrite=maybe"], "expected true or false, got 'maybe'"),
])
def test_bad_flags_raise_value_errors_naming_the_flag(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_flags(argv)


def test_no_internal_names_leak_into_flag_errors():
    for argv in (["--max_global_steps=abc"], ["--hparam_end_index=x"], ["--rng_seed=1e3"]):
        with pytest.raises(ValueError) as info:
            parse_flags(argv)
        assert "_optional_int" not in str(info.value) and "_int" not in str(info.value)


def test_flag_values_of_the_wrong_kind_are_type_errors():
    import dataclasses

    from algoperf_reinit.runner.flags import _check

    good = parse_flags(["--workload=digits"])
    _check(good)
    with pytest.raises(TypeError, match="--num_tuning_trials must be an int, got '2' of type str"):
        _check(dataclasses.replace(good, num_tuning_trials="2"))
    with pytest.raises(TypeError, match=r"--max_global_steps must be an int, got 1\.5"):
        _check(dataclasses.replace(good, max_global_steps=1.5))
