"""The timed training loop of one trial, over an immutable :class:`TrialState`.

Each step replaces the state by a new one (``NamedTuple._replace``); the fixed
parts of a trial (workload, submission, settings, keys, logger, progress display,
compile counter) are a frozen :class:`TrialContext`. The order of calls, the keys
and the time accounting are AlgoPerf's ``train_once`` (see
:mod:`~algoperf_reinit.runner.trial`):

1. ``data_select_rng, update_rng, prep_eval_rng, eval_rng =
   split(fold_in(rng, global_step), 4)``;
2. timed: ``data_selection`` and ``update_params`` (a ``TrainingCompleteError``
   ends training), then ``global_step += 1``; the submission time grows by the
   wall time since the end of the previous step;
3. at an eval point (step 1, then by wall time or ``eval_every_steps``, and when
   training is complete): the submission's new artefact rows are printed, then
   ``prepare_for_eval`` (timed); if the budget is spent the run ends without
   evaluating, else the untimed eval, its CSV row and a checkpoint.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from algoperf_reinit._records import jsonable
from algoperf_reinit.runner import checkpoint as ckpt
from algoperf_reinit.runner.artifacts import report_new_rows
from algoperf_reinit.runner.compilations import CompileCounter
from algoperf_reinit.runner.distributed import agree, is_writer
from algoperf_reinit.runner.faults import SubmissionFault
from algoperf_reinit.runner.metrics import MetricLogger
from algoperf_reinit.runner.progress import Progress
from algoperf_reinit.runner.sample_source import sample_source_meta

__all__ = [
    "StepKeys",
    "TrainState",
    "TrialContext",
    "TrialState",
    "first_target_eval",
    "run_loop",
    "save",
]


class TrainState(NamedTuple):
    """AlgoPerf's ``train_state`` (``ALGOPERF_API.md`` §3.3): times in seconds.

    The submission gets it as a read-only ``MappingProxyType`` of these keys.
    """

    validation_goal_reached: bool = False
    test_goal_reached: bool = False
    is_time_remaining: bool = True
    last_eval_time: float = 0.0  # wall-clock timestamp
    training_complete: bool = False
    accumulated_submission_time: float = 0.0
    accumulated_eval_time: float = 0.0
    accumulated_logging_time: float = 0.0
    last_step_end_time: float | None = None  # wall-clock timestamp

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainState:
        """The state a checkpoint saved (unknown keys are ignored)."""
        return cls()._replace(**{k: v for k, v in values.items() if k in cls._fields})


class TrialState(NamedTuple):
    """Everything that changes during a trial.

    Attributes:
      global_step: updates done.
      params, model_state: the model.
      optimizer_state: the submission's ``(state, update_fn)``.
      train: AlgoPerf's ``train_state``.
      eval_results: ``(global_step, metrics)`` of every eval so far.
      stop_reason: why the loop ended (``''`` while it runs).
      seen_rows: artefact rows already printed, per file.
      stop_message: the message of the submission's ``TrainingCompleteError``, if
        one ended training (e.g. a divergence).
    """

    global_step: int
    params: Any
    model_state: Any
    optimizer_state: tuple[Any, Any]
    train: TrainState
    eval_results: tuple[tuple[int, dict[str, Any]], ...]
    stop_reason: str
    seen_rows: Mapping[str, int]
    stop_message: str = ""


class StepKeys(NamedTuple):
    """The four keys of one step: ``split(fold_in(rng, global_step), 4)``."""

    data_selection: jax.Array
    update: jax.Array
    prepare_for_eval: jax.Array
    eval: jax.Array


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """The parts of a trial that do not change while it runs.

    Attributes:
      workload: the workload.
      submission: the loaded submission.
      setup: the :class:`~algoperf_reinit.runner.trial.TrialSetup`.
      rng: the loop key (the fourth of the trial's first split).
      input_queue: the step-indexed training stream.
      logger: the trial's metrics logger.
      progress: the progress display.
      counter: counts compilations by phase.
      preemption_count: this process's preemption count.
      fingerprint: the run's facts, saved in every checkpoint.
      start_time: wall-clock start of this process's part of the trial.
    """

    workload: Any
    submission: Any
    setup: Any
    rng: jax.Array
    input_queue: Any
    logger: MetricLogger
    progress: Progress
    counter: CompileCounter
    preemption_count: int
    fingerprint: Mapping[str, Any]
    start_time: float

    @property
    def trial_dir(self) -> pathlib.Path:
        """The trial directory."""
        return self.setup.trial_dir


def first_target_eval(workload: Any, eval_results: Any) -> tuple[int, Mapping[str, Any]] | None:
    """The first eval meeting the validation target (AlgoPerf scoring's ``>=``/``<=``)."""
    for step, result in eval_results:
        if workload.has_reached_validation_target(result):
            return step, result
    return None


def _is_training_complete(error: BaseException) -> bool:
    return type(error).__name__ == "TrainingCompleteError"


def _goals_met(ctx: TrialContext, train: TrainState) -> bool:
    return (train.validation_goal_reached and train.test_goal_reached
            and not ctx.setup.continue_past_target)


def save(ctx: TrialContext, state: TrialState, *, final: bool = False) -> None:
    """Checkpoints the state (if the trial saves checkpoints; process 0 only)."""
    if not ctx.setup.save_checkpoints or not is_writer():
        return
    ckpt.save_checkpoint(
        ctx.trial_dir, global_step=state.global_step, params=state.params,
        model_state=state.model_state, optimizer_state=state.optimizer_state[0],
        meta={"global_step": state.global_step, "preemption_count": ctx.preemption_count,
              "final": final, "train_state": state.train._asdict(),
              "eval_results": state.eval_results, "rng_seed": ctx.setup.rng_seed,
              "fingerprint": ctx.fingerprint, **sample_source_meta(ctx.input_queue)},
        keep=ctx.setup.keep_checkpoints)


def _select_batch(ctx: TrialContext, state: TrialState, keys: StepKeys) -> Any:
    """The submission's ``data_selection`` for this step (AlgoPerf passes 8 arguments)."""
    try:
        return ctx.submission.data_selection(
            ctx.workload, ctx.input_queue, state.optimizer_state, state.params,
            state.model_state, ctx.setup.hparams, state.global_step, keys.data_selection)
    except Exception as e:
        raise SubmissionFault("data_selection") from e


def _train_step(ctx: TrialContext, state: TrialState, keys: StepKeys,
                warmup: bool) -> tuple[TrialState, float]:
    """Timed data selection and update; returns the new state and the time it ended."""
    setup, submission, train = ctx.setup, ctx.submission, state.train
    optimizer_state, params, model_state = (state.optimizer_state, state.params,
                                            state.model_state)
    stop_reason, stop_message = state.stop_reason, state.stop_message
    with ctx.counter.timed(warmup=warmup):
        batch = _select_batch(ctx, state, keys)
        kwargs = dict(
            workload=ctx.workload, current_param_container=params,
            current_params_types=ctx.workload.model_params_types, model_state=model_state,
            hyperparameters=setup.hparams, batch=batch, loss_type=ctx.workload.loss_type,
            optimizer_state=optimizer_state, eval_results=list(state.eval_results),
            global_step=state.global_step, rng=keys.update)
        if submission.update_params_takes_train_state:
            kwargs["train_state"] = types.MappingProxyType(train._asdict())
        try:
            optimizer_state, params, model_state = submission.update_params(**kwargs)
        except Exception as e:
            if not _is_training_complete(e):
                raise SubmissionFault("update_params") from e
            train = train._replace(training_complete=True)
            stop_reason, stop_message = "training_complete", str(e)
            ctx.progress.message(f"the submission ended training at step {state.global_step}"
                                 f" (TrainingCompleteError: {e})")
        jax.block_until_ready((params, model_state))
    global_step = state.global_step + 1
    if setup.max_global_steps is not None and global_step >= setup.max_global_steps:
        train = train._replace(training_complete=True)
        stop_reason = stop_reason or "max_global_steps"
    now = time.time()
    train = train._replace(accumulated_submission_time=(
        train.accumulated_submission_time + (now - train.last_step_end_time)))
    ctx.progress.update(global_step, ctx.logger.latest, train.accumulated_submission_time,
                        latest_step=ctx.logger.latest_step)
    return state._replace(global_step=global_step, params=params, model_state=model_state,
                          optimizer_state=optimizer_state, train=train,
                          stop_reason=stop_reason, stop_message=stop_message), now


def _eval_due(ctx: TrialContext, state: TrialState, now: float) -> bool:
    every, step = ctx.setup.eval_every_steps, state.global_step
    if every is not None:
        due = step == 1 or step % every == 0
    else:
        due = now - state.train.last_eval_time >= float(ctx.workload.eval_period_time_sec)
    return due or state.train.training_complete


def _user_call(name: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as e:
        raise SubmissionFault(name) from e


def _prepare_for_eval(ctx: TrialContext, state: TrialState, keys: StepKeys,
                      warmup: bool) -> TrialState:
    """The submission's timed ``prepare_for_eval``, if it has one."""
    if ctx.submission.prepare_for_eval is None:
        return state
    with ctx.counter.timed(warmup=warmup):
        prep_start = time.time()
        optimizer_state, params, model_state = _user_call(
            "prepare_for_eval", ctx.submission.prepare_for_eval,
            workload=ctx.workload, current_param_container=state.params,
            current_params_types=ctx.workload.model_params_types,
            model_state=state.model_state, hyperparameters=ctx.setup.hparams,
            loss_type=ctx.workload.loss_type, optimizer_state=state.optimizer_state,
            eval_results=list(state.eval_results), global_step=state.global_step,
            rng=keys.prepare_for_eval)
        jax.block_until_ready((params, model_state))
        train = state.train._replace(accumulated_submission_time=(
            state.train.accumulated_submission_time + (time.time() - prep_start)))
    return state._replace(params=params, model_state=model_state,
                          optimizer_state=optimizer_state, train=train)


def _eval_point(ctx: TrialContext, state: TrialState, keys: StepKeys,
                warmup: bool) -> TrialState:
    """Artefact messages, ``prepare_for_eval``, the budget check, the eval, a checkpoint."""
    seen = report_new_rows(ctx.trial_dir, ctx.submission.artifacts, state.seen_rows,
                           ctx.progress.message)
    state = _prepare_for_eval(ctx, state._replace(seen_rows=seen), keys, warmup)
    remaining = agree(state.train.accumulated_submission_time < ctx.setup.budget_sec)
    state = state._replace(train=state.train._replace(is_time_remaining=remaining))
    if not remaining:
        return state._replace(stop_reason="time_budget")
    state = _evaluate(ctx, state, keys.eval)
    if _goals_met(ctx, state.train):
        state = state._replace(stop_reason="targets_reached")
    save(ctx, state)
    return state


def _evaluate(ctx: TrialContext, state: TrialState, eval_rng: jax.Array) -> TrialState:
    """The untimed eval: metrics, goals, the eval row and a progress message."""
    workload, step, train = ctx.workload, state.global_step, state.train
    ctx.progress.phase("evaluating", step)
    start = time.time()
    try:
        result = dict(workload.eval_model(ctx.setup.eval_batch_size, state.params,
                                          state.model_state, eval_rng, None, None, step))
    except RuntimeError as e:  # AlgoPerf logs eval RuntimeErrors (OOM) and goes on
        ctx.progress.message(f"eval at step {step} failed: {e}")
        return state._replace(train=train._replace(last_eval_time=time.time()))
    result = {k: jsonable(v, nonfinite="keep") for k, v in result.items()}
    train = train._replace(
        validation_goal_reached=(train.validation_goal_reached
                                 or workload.has_reached_validation_target(result)),
        test_goal_reached=train.test_goal_reached or workload.has_reached_test_target(result))
    end = time.time()
    train = train._replace(accumulated_eval_time=train.accumulated_eval_time + (end - start))
    result.update(
        score=train.accumulated_submission_time,
        total_duration=end - ctx.start_time,
        accumulated_submission_time=train.accumulated_submission_time,
        accumulated_eval_time=train.accumulated_eval_time,
        accumulated_logging_time=train.accumulated_logging_time,
    )
    log_start = time.time()
    eval_results = (*state.eval_results, (step, result))
    ctx.logger.append_scalar_metrics(result, step, preemption_count=ctx.preemption_count,
                                     is_eval=True)
    train = train._replace(accumulated_logging_time=(
        train.accumulated_logging_time + (time.time() - log_start)))
    train = train._replace(last_eval_time=time.time())
    _report_eval(ctx, eval_results, train)
    return state._replace(train=train, eval_results=eval_results)


def _report_eval(ctx: TrialContext, eval_results: Any, train: TrainState) -> None:
    step, result = eval_results[-1]
    name = f"validation/{ctx.workload.target_metric_name}"
    ctx.progress.latest_eval = {name: result.get(name)}
    ctx.progress.latest_eval_step = step
    if ctx.workload.has_reached_validation_target(result) and first_target_eval(
            ctx.workload, eval_results)[0] == step:
        ctx.progress.message(
            f"target met at the eval of step {step}: {name}={result[name]:.4g} "
            f"(target {ctx.workload.validation_target_value}) after "
            f"{train.accumulated_submission_time:.2f}s on the clock")


def run_loop(ctx: TrialContext, state: TrialState) -> TrialState:
    """Trains until the time budget, the targets, the step limit or the submission stop it.

    Returns:
      The final state.

    Raises:
      KeyboardInterrupt: after telling how to resume (the last checkpoint is on disk).
    """
    warmup = True  # the first timed section of this process holds the first compile
    try:
        while (state.train.is_time_remaining and not _goals_met(ctx, state.train)
               and not state.train.training_complete):
            keys = StepKeys(*jax.random.split(jax.random.fold_in(ctx.rng, state.global_step), 4))
            if warmup:  # the first step of this process holds the train step's compile
                ctx.progress.phase("compiling", state.global_step)
            state, now = _train_step(ctx, state, keys, warmup)
            if _eval_due(ctx, state, now):
                state = _eval_point(ctx, state, keys, warmup)
            warmup = False
            state = state._replace(train=state.train._replace(last_step_end_time=time.time()))
    except KeyboardInterrupt:
        ctx.progress.close()
        ctx.progress.message(f"interrupted at step {state.global_step}; everything up to the "
                             "last checkpoint is on disk: rerun with --resume_last_run to "
                             "continue")
        raise
    ctx.progress.close()
    return state
