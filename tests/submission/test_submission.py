"""CycleSubmission and SubmissionConfig: validation, the one authoritative cycle table, and
the reset mask resolved once per run."""

import dataclasses

import jax
import numpy as np
import pytest
from algoperf_reinit_workloads import get_workload

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.reinit import (
    OptimizerResetPolicy,
    ParamResetPolicy,
    PlateauConfig,
    ReinitConfig,
)
from algoperf_reinit.schedules import schedule_state
from algoperf_reinit.submission import CycleSubmission, SubmissionConfig

HP = {"learning_rate": 3e-3, "budget_fraction": 0.05}  # 100 of digits' 2000 steps
EVAL_EVERY = 5


class CountingWorkload:
    """The digits workload, counting reads of ``model_params_types``."""

    def __init__(self):
        self._inner = get_workload("digits", hidden_sizes=(16,))
        self.type_reads = 0

    @property
    def model_params_types(self):
        self.type_reads += 1
        return self._inner.model_params_types

    def __getattr__(self, name):
        return getattr(self._inner, name)


def config(**reinit):
    return SubmissionConfig(
        name="test",
        schedule=ScheduleConfig(cycle_fractions=(0.4, 0.3, 0.3)),
        reinit=ReinitConfig(**reinit),
        plot=False,
    )


def drive(submission, workload, steps, tmp_path):
    """AlgoPerf's loop, condensed; a flat validation loss makes the plateau detector fire."""
    data_rng, opt_rng, model_rng, rng = jax.random.split(jax.random.PRNGKey(0), 4)
    queue = workload._build_input_queue(data_rng, "train", None, 32)
    params, model_state = workload.init_model_fn(model_rng)
    opt = submission.init_optimizer_state(workload, params, model_state, HP, opt_rng,
                                          run_dir=tmp_path)
    eval_results, events = [], []
    for step in range(steps):
        before = opt[0].reinit.table
        opt, params, model_state = submission.update_params(
            workload, params, model_state, HP, next(queue), opt, eval_results, step,
            jax.random.fold_in(rng, step))
        if opt[0].reinit.table is not before:
            events.append(step)
        if (step + 1) % EVAL_EVERY == 0:
            eval_results = [*eval_results, (step + 1, {"validation/loss": 1.0})]
    return opt, events


PLATEAU = PlateauConfig(metric="loss", patience=2, min_evals=2)


def test_the_state_table_is_the_authority_and_the_optimizer_mirrors_it(tmp_path):
    submission = CycleSubmission(config(plateau=PLATEAU,
                                        optimizer=OptimizerResetPolicy(mode="keep")))
    (state, stepper), swaps = drive(submission, CountingWorkload(), 60, tmp_path)
    assert int(state.reinit.num_early_stops) >= 1 and len(swaps) == int(
        state.reinit.num_early_stops)
    assert isinstance(state.reinit.table.start, np.ndarray)  # host copy: no device sync
    jax.tree.map(np.testing.assert_array_equal, schedule_state(state.optax).table,
                 state.reinit.table)
    # The table the run was built with stays what it was (the EventLog's resume check).
    assert not np.array_equal(np.asarray(stepper.table.start), state.reinit.table.start)
    assert not hasattr(stepper.events, "_drawn")
    assert stepper.train_step._cache_size() == 1


def test_the_reset_mask_is_resolved_once_when_the_run_is_built(tmp_path):
    policy = ParamResetPolicy("shrink_perturb", param_types={"WEIGHT"}, model_state="keep")
    workload = CountingWorkload()
    (state, stepper), _ = drive(CycleSubmission(config(params=policy)), workload, 100, tmp_path)
    assert int(state.reinit.num_resets) == 2
    assert workload.type_reads == 1  # at init_optimizer_state, not at each reset
    kernels = [path for path, flag in jax.tree_util.tree_flatten_with_path(stepper.mask)[0]
               if flag]
    assert kernels and all("kernel" in jax.tree_util.keystr(p) for p in kernels)


def test_a_selector_matching_nothing_fails_when_the_run_is_built(tmp_path):
    policy = ParamResetPolicy("reinit", pattern="^no_such_layer/", model_state="keep")
    with pytest.raises(ValueError, match="pattern matches no leaf of params"):
        drive(CycleSubmission(config(params=policy)), CountingWorkload(), 1, tmp_path)


def test_keep_policies_need_no_mask(tmp_path):
    (_, stepper), _ = drive(CycleSubmission(config()), CountingWorkload(), 1, tmp_path)
    assert stepper.mask is None


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(capacity=2), ValueError,
         r"SubmissionConfig.capacity must be an int >= 3, got 2; the schedule has 3 cycles"),
        (dict(capacity=16.0), TypeError, r"SubmissionConfig.capacity must be an int, got 16.0"),
        (dict(log_every=0), ValueError, r"SubmissionConfig.log_every must be an int >= 1, got 0"),
        (dict(log_every="10"), TypeError, r"SubmissionConfig.log_every must be an int"),
        (dict(schedule={}), TypeError, r"SubmissionConfig.schedule must be a ScheduleConfig"),
        (dict(reinit=None), TypeError, r"SubmissionConfig.reinit must be a ReinitConfig"),
        (dict(reinit=ReinitConfig(clock="seconds")), ValueError,
         r"SubmissionConfig.reinit.clock must be 'steps', got 'seconds'; submissions run on"),
    ],
)
def test_config_errors(change, error, match):
    with pytest.raises(error, match=match):
        dataclasses.replace(config(), **change)


def test_submission_api_takes_a_config_or_a_submission():
    from algoperf_reinit.submission import submission_api

    assert submission_api(config()).get_batch_size("digits") == 128
    assert submission_api(CycleSubmission(config())).get_batch_size("digits") == 128
    with pytest.raises(TypeError, match="submission must be a CycleSubmission or a "
                                        "SubmissionConfig, got 'nadamw' of type str"):
        submission_api("nadamw")


@pytest.mark.parametrize("fractions, words", [((1.0,), "1 planned cycle"),
                                              ((0.5, 0.5), "2 planned cycles")])
def test_the_plot_title_counts_cycles_in_english(fractions, words):
    from algoperf_reinit.submission import HParams

    submission = CycleSubmission(dataclasses.replace(
        config(), schedule=ScheduleConfig(cycle_fractions=fractions)))
    title = submission._title(CountingWorkload(), HParams())
    assert title.endswith(f", {words}")
