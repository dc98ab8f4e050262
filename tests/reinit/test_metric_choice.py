"""The plateau metric chosen from the first evaluation, on every AlgoPerf workload's keys,
and model_reinit_schedule's checks of eval_results and global_step."""

import types

import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.optim import nadamw
from algoperf_reinit.reinit import (
    OptimizerResetPolicy,
    PlateauConfig,
    ReinitConfig,
    choose_plateau_metric,
    init_reinit_state,
    metric_direction,
    model_reinit_schedule,
)
from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table

# ALGOPERF_API.md §3.4 and the per-workload table: (metrics, target metric).
WORKLOADS = {
    "mnist": (("accuracy", "loss"), "accuracy"),
    "cifar": (("accuracy", "loss"), "accuracy"),
    "imagenet_resnet": (("accuracy", "loss"), "accuracy"),
    "imagenet_vit": (("accuracy", "loss"), "accuracy"),
    "ogbg": (("accuracy", "loss", "mean_average_precision"), "mean_average_precision"),
    "wmt": (("accuracy", "loss", "bleu"), "bleu"),
    "criteo1tb": (("loss",), "loss"),
    "fastmri": (("ssim", "loss"), "ssim"),
    "librispeech_conformer": (("ctc_loss", "wer"), "wer"),
    "librispeech_deepspeech": (("ctc_loss", "wer"), "wer"),
}
EXPECTED = {name: ("validation/ctc_loss" if "librispeech" in name else "validation/loss")
            for name in WORKLOADS}


def eval_dict(metrics, step=1):
    """An AlgoPerf eval dict: train/validation/test metrics and the bookkeeping keys."""
    d = {f"{split}/{m}": 0.5 for split in ("train", "validation", "test") for m in metrics}
    d.update({"validation/num_examples": 100, "test/num_examples": 100, "score": 1.0,
              "total_duration": 2.0, "accumulated_submission_time": 1.0,
              "accumulated_eval_time": 1.0, "accumulated_logging_time": 0.0,
              "global_step": step, "preemption_count": 0})
    return d


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_auto_chooses_a_loss_on_every_algoperf_workload(name):
    metrics, target = WORKLOADS[name]
    workload = types.SimpleNamespace(target_metric_name=target)
    choice = choose_plateau_metric(PlateauConfig(metric="auto"), eval_dict(metrics),
                                   workload=workload)
    assert (choice.config.metric, choice.config.mode) == (EXPECTED[name], "min")
    assert choice.reason.startswith(f"{EXPECTED[name]} (min): ")


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_configured_metric_missing_falls_back_without_an_error(name):
    metrics, target = WORKLOADS[name]
    config = PlateauConfig(metric="accuracy", mode="max")
    choice = choose_plateau_metric(config, eval_dict(metrics),
                                   workload=types.SimpleNamespace(target_metric_name=target))
    if "accuracy" in metrics:
        assert (choice.config.metric, choice.config.mode) == ("validation/accuracy", "max")
        assert "the configured metric" in choice.reason
    else:
        assert choice.config.metric == EXPECTED[name]
        assert "validation/accuracy is not in the evaluation" in choice.reason


def test_the_target_metric_is_last_with_its_direction():
    cfg = PlateauConfig(metric="auto")
    ssim = choose_plateau_metric(cfg, {"validation/ssim": 0.7},
                                 workload=types.SimpleNamespace(target_metric_name="ssim"))
    assert (ssim.config.metric, ssim.config.mode) == ("validation/ssim", "max")
    assert "the workload's target metric" in ssim.reason
    wer = choose_plateau_metric(cfg, {"validation/wer": 0.7},
                                workload=types.SimpleNamespace(target_metric_name="wer"))
    assert wer.config.mode == "min"
    none = choose_plateau_metric(cfg, {"validation/wer": 0.7}, workload=object())
    assert none.config is None
    assert none.reason.endswith("(validation metrics: ['validation/wer']): no early stops "
                                "in this run")


def test_metric_direction():
    assert [metric_direction(n) for n in ("validation/loss", "ctc_loss", "wer", "error_rate",
                                          "accuracy", "bleu", "ssim",
                                          "mean_average_precision")] == (
        ["min"] * 4 + ["max"] * 4)


# --- through model_reinit_schedule -------------------------------------------------

def table():
    return build_cycle_table(ScheduleConfig(num_cycles=2), 100, 1e-2, 0.1, capacity=4)


def config(metric="auto", **kw):
    return ReinitConfig(optimizer=OptimizerResetPolicy(mode="keep"),
                        plateau=PlateauConfig(metric=metric, patience=1, **kw))


def call(step, eval_results, state, cfg=None, workload=None):
    params = {"w": jnp.zeros(3)}
    opt_state = nadamw(table()).init(params)
    out = model_reinit_schedule(step, workload, None, None, eval_results, state, params, {},
                                opt_state, cfg or config())
    return out.state, out.events


def test_librispeech_runs_on_ctc_loss_and_says_so_once():
    state = init_reinit_state(config(), table(), np.asarray([0, 1], np.uint32))
    results = [(1, eval_dict(("ctc_loss", "wer"), 1))]
    state, events = call(1, results, state)
    assert [(e.kind, e.step) for e in events] == [("plateau_metric", 1)]
    assert events[0].reason.startswith("validation/ctc_loss (min): the first other "
                                       "validation/*loss")
    assert int(state.plateau.num_evals) == 1 and int(state.plateau.last_fed_step) == 1
    state, events = call(2, results, state)
    assert events == ()
    results.append((10, eval_dict(("ctc_loss", "wer"), 10)))
    state, events = call(10, results, state)
    assert [e.kind for e in events] == ["early_stop"]  # patience 1, no improvement
    assert "validation/ctc_loss" in events[0].reason
    assert int(state.plateau.num_evals) == 2


def test_no_usable_metric_means_no_early_stops_not_a_crash():
    state = init_reinit_state(config(), table(), np.asarray([0, 1], np.uint32))
    results = [(1, {"validation/wer": 0.5})]
    state, events = call(1, results, state)
    assert events[0].kind == "plateau_metric" and "no early stops" in events[0].reason
    assert int(state.plateau.last_fed_step) == 1 and int(state.plateau.num_evals) == 0


def test_an_evaluation_lacking_the_chosen_metric_is_skipped():
    state = init_reinit_state(config("loss"), table(), np.asarray([0, 1], np.uint32))
    results = [(1, {"validation/loss": 1.0}), (5, {"validation/accuracy": 0.5})]
    state, _ = call(5, results, state, config("loss"))
    assert int(state.plateau.num_evals) == 1 and int(state.plateau.last_fed_step) == 5


@pytest.mark.parametrize("bad, error, match", [
    ({1: {"validation/loss": 1.0}}, TypeError,
     r"eval_results must be a list of \(global_step, metrics dict\) pairs, got"),
    ([(-1, {"validation/loss": 1.0})], ValueError,
     "global_step in eval_results must be an int >= 0, got -1"),
    ([(3, {"validation/loss": 1.0}), (2, {"validation/loss": 1.0})], ValueError,
     r"global_step in eval_results must be not lower than the one before \(3\), got 2"),
    ([(9, {"validation/loss": 1.0})], ValueError,
     r"must be at most the current global_step \(5\), got 9; an evaluation cannot come "
     "from a future step"),
    ([(1, {"validation/loss": "1.5"})], TypeError,
     "validation/loss at step 1 must be a scalar number, got '1.5'"),
])
def test_bad_eval_results_are_rejected(bad, error, match):
    state = init_reinit_state(config(), table(), np.asarray([0, 1], np.uint32))
    with pytest.raises(error, match=match):
        call(5, bad, state)


def test_steps_going_backwards_are_rejected():
    state = init_reinit_state(config(), table(), np.asarray([0, 1], np.uint32))
    state, _ = call(5, [(5, {"validation/loss": 1.0})], state)
    with pytest.raises(ValueError, match=r"not lower than the newest evaluation already read "
                                         r"\(step 5\), got 4; steps must not go backwards"):
        call(6, [(4, {"validation/loss": 1.0})], state)
    with pytest.raises(ValueError, match=r"global_step must be a finite number >= 0, got -1"):
        call(-1, [], state)
    with pytest.raises(ValueError, match="at most the current global_step"):
        call(3, [(5, {"validation/loss": 1.0}), (6, {"validation/loss": 1.0})], state)
