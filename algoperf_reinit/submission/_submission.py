"""The AlgoPerf v0.6 submission API, implemented once for every submission of ours.

A submission file builds a :class:`CycleSubmission` from a
:class:`SubmissionConfig` and forwards the API functions to it (see
``submissions/*/submission.py``). Everything that changes during training lives in
the optimizer state's element 0 (checkpointed by the harness):

``optimizer_state = (SubmissionState(optax=..., reinit=..., health=...), Stepper)``

Element 1, the :class:`Stepper`, holds only what the run was built with (the optax
transformation, the jitted train step, the table it was built with, the parameters'
reset mask, the event log) and is never checkpointed; after a restore the harness
re-attaches it from a fresh ``init_optimizer_state``.

The cycle table is held once: ``SubmissionState.reinit.table`` (host numpy) is the
authority; the optimizer state holds the device mirror that the train step reads,
written together with it by ``model_reinit_schedule`` and nowhere else.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from algoperf_reinit import _validation
from algoperf_reinit._records import dumps_strict
from algoperf_reinit.optim import nadamw
from algoperf_reinit.reinit import (
    ReinitConfig,
    ReinitEvent,
    ReinitState,
    init_reinit_state,
    make_reset_fn,
    param_reset_mask,
)
from algoperf_reinit.reinit import model_reinit_schedule as _model_reinit_schedule
from algoperf_reinit.schedules import (
    CycleTable,
    ScheduleConfig,
    build_cycle_table,
    current_learning_rate,
)
from algoperf_reinit.submission._events import EventLog, is_writer, run_artifacts
from algoperf_reinit.submission._health import (
    NON_FINITE_ACTIONS,
    Health,
    check_due,
    init_health,
    report_non_finite,
)
from algoperf_reinit.submission._hparams import RESOLVED_FILE, HParams, report_hparams
from algoperf_reinit.submission._step import (
    make_train_step,
    replicated,
    training_complete_error,
)

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "CycleSubmission",
    "Stepper",
    "SubmissionAPI",
    "SubmissionConfig",
    "SubmissionState",
    "submission_api",
]

# Global training batch sizes: AlgoPerf's NAdamW baseline values for the benchmark
# workloads, and ours for the bundled ones. The only sanctioned per-workload switch.
DEFAULT_BATCH_SIZES: Mapping[str, int] = {
    "criteo1tb": 262_144,
    "fastmri": 32,
    "imagenet_resnet": 1024,
    "imagenet_vit": 1024,
    "librispeech_conformer": 256,
    "librispeech_deepspeech": 256,
    "ogbg": 512,
    "wmt": 128,
    "mnist": 16,
    "cifar": 128,
    "digits": 128,
    "stdlib_lm": 32,
}


@dataclasses.dataclass(frozen=True)
class SubmissionConfig:
    """Everything that distinguishes one of our submissions from another.

    Attributes:
      name: the submission's name (plot titles, event logs).
      schedule: how ``step_hint * budget_fraction`` is split into cycles.
      reinit: early stops and resets at cycle boundaries.
      defaults: hyperparameters for names the search space does not set, and the
        self-tuning values.
      batch_sizes: global batch size per workload name.
      capacity: cycle-table rows (>= the number of cycles; padding lets the table
        change without recompiling).
      plot: draw ``lr_schedule.png`` at init and after every event (on the clock
        under the harness: turn it off for scoring runs).
      log_every: log loss, grad norm, learning rate and cycle through
        ``workload.metrics_logger`` every this many steps (each log syncs the host).
      stop_at_schedule_end: raise AlgoPerf's ``TrainingCompleteError`` once the
        schedule is over (``global_step`` at the end of its last cycle, after any
        redistribution): the learning rate then stays at its end value (0 by
        default), so further steps would only spend the time budget.
      on_non_finite: what happens once the training loss or gradient norm is not
        finite (read at the eval and log cadence, warned once): ``"stop"`` raises
        AlgoPerf's ``TrainingCompleteError``; ``"continue"`` keeps going (resets are
        skipped while the parameters are not finite).
    """

    name: str
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    reinit: ReinitConfig = dataclasses.field(default_factory=ReinitConfig)
    defaults: HParams = dataclasses.field(default_factory=HParams)
    batch_sizes: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_BATCH_SIZES))
    capacity: int = 16
    plot: bool = True
    log_every: int = 100
    stop_at_schedule_end: bool = True
    on_non_finite: str = "stop"

    def __post_init__(self):
        for name, cls in (("schedule", ScheduleConfig), ("reinit", ReinitConfig)):
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise _validation.type_error(f"SubmissionConfig.{name}", value, f"a {cls.__name__}")
        cycles = self.schedule.num_cycles
        _validation.integer("SubmissionConfig.capacity", self.capacity, minimum=cycles,
                            fix=f"the schedule has {cycles} cycles")
        for name, clock in (("schedule", self.schedule.clock), ("reinit", self.reinit.clock)):
            if clock != "steps":
                raise _validation.value_error(f"SubmissionConfig.{name}.clock", clock, "'steps'",
                                              fix="submissions run on the steps clock")
        _validation.integer("SubmissionConfig.log_every", self.log_every, minimum=1)
        _validation.choice("SubmissionConfig.on_non_finite", self.on_non_finite,
                           NON_FINITE_ACTIONS)


class SubmissionState(NamedTuple):
    """Element 0 of the optimizer state: everything that changes, as arrays."""

    optax: Any
    reinit: ReinitState
    health: Health


@dataclasses.dataclass(frozen=True, eq=False)
class Stepper:
    """Element 1 of the optimizer state: how this run steps (never checkpointed)."""

    tx: optax.GradientTransformation
    train_step: Any
    hparams: HParams
    events: EventLog | None
    table: CycleTable  # the table the run was built with (drawn by events.start)
    mask: Any = None  # the parameters' reset mask, resolved once; None when params are kept
    reset_fn: Any = None  # the jitted arrays half of a reset (one compile per run)

    def __call__(self, updates, state, params=None):  # AlgoPerf calls it opt_update_fn
        return self.tx.update(updates, state, params)


class CycleSubmission:
    """The v0.6 API over a :class:`SubmissionConfig`; holds no training state."""

    def __init__(self, config: SubmissionConfig):
        if not isinstance(config, SubmissionConfig):
            raise _validation.type_error("config", config, "a SubmissionConfig")
        self.config = config

    def get_batch_size(self, workload_name: str) -> int:
        """Global training batch size; ``ValueError`` for an unknown workload."""
        if workload_name not in self.config.batch_sizes:
            raise ValueError(
                f"{self.config.name} has no batch size for workload {workload_name!r}; known: "
                f"{sorted(self.config.batch_sizes)}"
            )
        return self.config.batch_sizes[workload_name]

    def init_optimizer_state(
        self,
        workload: Any,
        model_params: Any,
        model_state: Any,
        hyperparameters: Any,
        rng: Any,
        run_dir: str | pathlib.Path | None = None,
    ) -> tuple[SubmissionState, Stepper]:
        """Builds the cycle table, the optimizer and the reinit state; draws the PNG."""
        del model_state
        report = report_hparams(hyperparameters, self.config.defaults)
        hp = report.hparams
        budget = max(int(workload.step_hint * hp.budget_fraction), 1)
        table = build_cycle_table(self.config.schedule, budget, hp.learning_rate,
                                  hp.warmup_factor, capacity=self.config.capacity)
        tx = nadamw(table, b2=hp.beta2, weight_decay=hp.weight_decay,
                    one_minus_beta1=hp.one_minus_beta1)
        params = jax.device_put(model_params, replicated())
        # Replicated before the first step, or step 0 compiles a second time
        # (ALGOPERF_API.md §2); the reinit state stays on the host.
        state = SubmissionState(
            optax=jax.device_put(tx.init(params), replicated()),
            reinit=init_reinit_state(self.config.reinit, table, rng),
            health=init_health(replicated()),
        )
        events = None
        if run_dir is not None:
            events = EventLog(pathlib.Path(run_dir), title=self._title(workload, hp),
                              plot=self.config.plot)
            events.start(table)
        self._say_hparams(report, run_dir)
        policy = self.config.reinit.params
        mask = None if policy.mode == "keep" else param_reset_mask(policy, params,
                                                                   workload=workload)
        reset_fn = None
        if self.config.reinit.resets_anything:
            reset_fn = make_reset_fn(self.config.reinit, workload, tx=tx, mask=mask,
                                     out_shardings=replicated())
        step = make_train_step(workload, tx, use_dropout_arg=hp.dropout_rate is not None,
                               track_non_finite=True)
        return state, Stepper(tx=tx, train_step=step, hparams=hp, events=events, table=table,
                              mask=mask, reset_fn=reset_fn)

    def _say_hparams(self, report: Any, run_dir: Any) -> None:
        """Warns about unknown names; says (and writes) which names took defaults."""
        if not is_writer():
            return
        for message in report.warnings(self.config.name):
            warnings.warn(message, UserWarning, stacklevel=4)
        print(report.summary(self.config.name), flush=True)
        if run_dir is not None:
            path = pathlib.Path(run_dir)
            path.mkdir(parents=True, exist_ok=True)
            (path / RESOLVED_FILE).write_text(
                dumps_strict(report.as_json(self.config.name), indent=1, sort_keys=True) + "\n")

    def _title(self, workload: Any, hp: HParams) -> str:
        name = type(workload).__name__
        n = self.config.schedule.num_cycles
        return (f"{self.config.name} on {name}: lr {hp.learning_rate:.3g}, warmup "
                f"{hp.warmup_factor:.3g}, {n} planned cycle{'' if n == 1 else 's'}")

    def update_params(
        self,
        workload: Any,
        current_param_container: Any,
        model_state: Any,
        hyperparameters: Any,
        batch: Mapping[str, Any],
        optimizer_state: tuple[SubmissionState, Stepper],
        eval_results: Sequence[tuple[int, Mapping[str, Any]]],
        global_step: int,
        rng: Any,
    ) -> tuple[tuple[SubmissionState, Stepper], Any, Any]:
        """One step: early stops and resets due now, then the jitted train step."""
        state, stepper = optimizer_state
        params = current_param_container
        if self.config.stop_at_schedule_end:
            end = state.reinit.table.boundaries()[-1]
            if global_step >= end:
                raise training_complete_error()(
                    f"{self.config.name}: the schedule ended at step {end:g}")
        if stepper.events is not None and not stepper.events.checked:
            # A run resumed from a checkpoint has a table the PNG drawn at init lacks.
            stepper.events.check_current(state.reinit.table, built=stepper.table)
        if check_due(global_step, eval_results, self.config.log_every):
            state = self._check_health(state, stepper, global_step)
        out = _model_reinit_schedule(
            global_step, workload, None, hyperparameters, eval_results, state.reinit,
            params, model_state, state.optax, self.config.reinit, tx=stepper.tx,
            mask=stepper.mask, reset_fn=stepper.reset_fn,
            can_reset=lambda: not bool(state.health.non_finite),
        )
        if out.events and stepper.events is not None:
            stepper.events.record(out.events, before=state.reinit.table, after=out.state.table)
        # Replicated state every step (a no-op for arrays already replicated): the
        # harness's step-0 params and a reset's fresh arrays may be single-device, and
        # a new sharding would compile the step again (ALGOPERF_API.md §2).
        params, model_state, opt_state = jax.device_put(
            (out.params, out.model_state, out.opt_state), replicated())
        hp = stepper.hparams
        result = stepper.train_step(
            params, model_state, opt_state, batch, rng, np.float32(hp.label_smoothing),
            np.float32(hp.dropout_rate or 0.0), np.float32(hp.grad_clip or 0.0),
            state.health.non_finite,
        )
        if global_step % self.config.log_every == 0:
            self._log(workload, global_step, result, out.state)
        new_state = SubmissionState(optax=result.opt_state, reinit=out.state,
                                    health=state.health._replace(non_finite=result.non_finite))
        return (new_state, stepper), result.params, result.model_state

    def _check_health(self, state: SubmissionState, stepper: Stepper,
                      global_step: int) -> SubmissionState:
        """Reads the non-finite flag (eval/log cadence); warns once; stops by default."""
        health, message = report_non_finite(state.health, global_step, name=self.config.name,
                                            action=self.config.on_non_finite,
                                            hparams=stepper.hparams)
        state = state._replace(health=health)
        if message is not None and stepper.events is not None:
            table = state.reinit.table
            event = ReinitEvent(step=global_step, cycle=int(np.asarray(state.reinit.cycle)),
                                kind="non_finite", reason=message, metrics={},
                                old_boundaries=table.boundaries(),
                                new_boundaries=table.boundaries())
            stepper.events.record([event], before=table, after=table)
        if int(health.reported_at) >= 0 and self.config.on_non_finite == "stop":
            raise training_complete_error()(
                f"{self.config.name}: training diverged (non-finite loss or gradient norm "
                f"by step {int(health.reported_at)})")
        return state

    def _log(self, workload: Any, global_step: int, result: Any, reinit: ReinitState) -> None:
        logger = getattr(workload, "metrics_logger", None)
        if logger is None:
            return
        logger.append_scalar_metrics(
            {
                "loss": float(result.loss),
                "grad_norm": float(result.grad_norm),
                "learning_rate": current_learning_rate(result.opt_state),
                "cycle": int(reinit.cycle),
            },
            global_step,
        )

    def prepare_for_eval(self, optimizer_state, current_param_container, model_state):
        """No averaging: the live parameters are evaluated."""
        return optimizer_state, current_param_container, model_state

    def data_selection(self, input_queue: Iterator[dict[str, Any]]) -> dict[str, Any]:
        """The next batch of the harness's queue."""
        return next(input_queue)


class SubmissionAPI(NamedTuple):
    """The five v0.6 API functions, with AlgoPerf's exact parameter names, and the
    optional artefact hook of our runner (``algoperf_reinit.run_protocol``)."""

    get_batch_size: Any
    init_optimizer_state: Any
    update_params: Any
    prepare_for_eval: Any
    data_selection: Any
    run_artifacts: Any


def submission_api(submission: CycleSubmission | SubmissionConfig,
                   run_dir: Any = None) -> SubmissionAPI:
    """Module-level API functions for a submission file.

    The harness looks the functions up by name, calls ``update_params`` and
    ``prepare_for_eval`` with keyword arguments, and passes ``train_state`` only
    because ``update_params`` names it; the parameter names below are the API's.

    Args:
      submission: the submission, or its configuration.
      run_dir: ``run_dir(workload, hyperparameters, rng) -> path or None``, supplied
        by the submission file (an entry point may read the harness's flags; the
        library does not).

    Returns:
      The functions; assign them to module attributes of the same names
      (``run_artifacts`` tells our runner which files the submission writes).

    Raises:
      TypeError: if ``submission`` is neither a CycleSubmission nor a SubmissionConfig.
    """
    if isinstance(submission, SubmissionConfig):
        submission = CycleSubmission(submission)
    elif not isinstance(submission, CycleSubmission):
        raise _validation.type_error("submission", submission,
                                     "a CycleSubmission or a SubmissionConfig")

    def get_batch_size(workload_name):
        return submission.get_batch_size(workload_name)

    def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
        directory = run_dir(workload, hyperparameters, rng) if run_dir is not None else None
        return submission.init_optimizer_state(workload, model_params, model_state,
                                               hyperparameters, rng, run_dir=directory)

    def update_params(workload, current_param_container, current_params_types, model_state,
                      hyperparameters, batch, loss_type, optimizer_state, eval_results,
                      global_step, rng, train_state=None):
        del current_params_types, loss_type, train_state
        return submission.update_params(workload, current_param_container, model_state,
                                        hyperparameters, batch, optimizer_state, eval_results,
                                        global_step, rng)

    def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                         hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                         rng):
        del workload, current_params_types, hyperparameters, loss_type, eval_results
        del global_step, rng
        return submission.prepare_for_eval(optimizer_state, current_param_container,
                                           model_state)

    def data_selection(workload, input_queue, optimizer_state, current_param_container,
                       model_state, hyperparameters, global_step, rng):
        del workload, optimizer_state, current_param_container, model_state, hyperparameters
        del global_step, rng
        return submission.data_selection(input_queue)

    return SubmissionAPI(get_batch_size, init_optimizer_state, update_params, prepare_for_eval,
                         data_selection, run_artifacts)
