"""``model_reinit_schedule``: early cycle stops and resets at cycle boundaries.

Called once per training step from the host (e.g. at the top of AlgoPerf's
``update_params``), :func:`model_reinit_schedule` does nothing on ordinary steps
and, on the rare steps where something happens:

1. feeds new ``validation/*`` results to the plateau detector; on a trigger it ends
   the current cycle at this step and redistributes the remaining budget over the
   cycles still to run (:func:`end_cycle_early`), then swaps the new cycle table in:
   into ``ReinitState.table``, the one authoritative copy (host numpy), and into the
   optimizer state, its device mirror (same shapes: the train step is not
   recompiled). Nothing else writes either copy;
2. when a new cycle has begun, resets parameters, model state and optimizer state by
   the configured policies (fresh parameters come from ``workload.init_model_fn``
   with a key derived from the state's key and the cycle index), and resets the
   plateau detector for the new cycle.

Everything that changes lives in :class:`ReinitState`, a pytree of arrays with a
schema version, checkpointable with flax serialization or orbax alongside the
optimizer state. Nothing is kept in module globals or closures, so a run stopped
at any step and resumed from its checkpoint continues exactly as the
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf_reinit import _validation
from algoperf_reinit.reinit._eval_results import _entry as _eval_results_entry
from algoperf_reinit.reinit._eval_results import (
    check_eval_results,
    check_kind,
    feed_eval_results,
)
from algoperf_reinit.reinit._metric_choice import choose_plateau_metric
from algoperf_reinit.reinit._optimizer_reset import OptimizerResetPolicy, reset_optimizer_state
from algoperf_reinit.reinit._param_policy import ParamResetPolicy
from algoperf_reinit.reinit._param_reset import reset_model_state, reset_params
from algoperf_reinit.reinit._param_select import param_reset_mask
from algoperf_reinit.reinit._plateau import (
    PlateauConfig,
    PlateauReason,
    PlateauState,
    init_plateau_state,
    reset_plateau,
)
from algoperf_reinit.reinit._redistribute import Redistribution, end_cycle_early
from algoperf_reinit.schedules._scale import replace_table
from algoperf_reinit.schedules._table import CLOCKS, CycleTable

__all__ = [
    "SCHEMA_VERSION",
    "ReinitConfig",
    "ReinitEvent",
    "ReinitOutput",
    "ReinitState",
    "check_reinit_state",
    "init_reinit_state",
    "make_reset_fn",
    "model_reinit_schedule",
]

SCHEMA_VERSION = 1
"""Version of the :class:`ReinitState` layout; bumped when fields change."""

EvalResults = Sequence[tuple[int, Mapping[str, Any]]]
Strength = float | Callable[[EvalResults, Any], float]


@dataclasses.dataclass(frozen=True)
class ReinitConfig:
    """What happens at cycle boundaries and when a cycle may end early.

    Attributes:
      params: parameter (and model-state) policy at every new cycle; the default
        keeps them.
      optimizer: optimizer-state policy at every new cycle; the default drops the
        first moment and keeps the second moment and the step count (no update
        spike, see :class:`OptimizerResetPolicy`).
      plateau: plateau detector that may end a cycle early; ``None`` disables early
        stops.
      redistribution: how the budget left after an early stop is split over the
        cycles still to run.
      strength: how strongly parameters are reset, in ``[0, 1]``: a number, or a
        callable ``(eval_results, workload) -> float`` evaluated at each reset (the
        seed's metric-driven ``reset_metric``; see
        :func:`~algoperf_reinit.reinit.metric_strength`).
      clock: ``"steps"`` or ``"seconds"``; the clock of the cycle table.
    """

    params: ParamResetPolicy = dataclasses.field(
        default_factory=lambda: ParamResetPolicy("keep"))
    optimizer: OptimizerResetPolicy = dataclasses.field(default_factory=OptimizerResetPolicy)
    plateau: PlateauConfig | None = None
    redistribution: Redistribution = dataclasses.field(default_factory=Redistribution)
    strength: Strength = 1.0
    clock: str = "steps"

    def __post_init__(self):
        checks = (
            ("params", ParamResetPolicy, "a ParamResetPolicy"),
            ("optimizer", OptimizerResetPolicy, "an OptimizerResetPolicy"),
            ("redistribution", Redistribution, "a Redistribution"),
            ("plateau", PlateauConfig | None, "a PlateauConfig or None"),
        )
        for name, cls, rule in checks:
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise _validation.type_error(f"ReinitConfig.{name}", value, rule)
        _validation.choice("ReinitConfig.clock", self.clock, CLOCKS)
        if not callable(self.strength):
            try:
                _validation.unit_interval("ReinitConfig.strength", self.strength)
            except TypeError:
                raise _validation.type_error(
                    "ReinitConfig.strength", self.strength,
                    "a number in [0, 1] or a callable (eval_results, workload) -> float",
                ) from None

    @property
    def resets_anything(self) -> bool:
        """Whether a new cycle changes parameters, model state or optimizer state."""
        return self.params.mode != "keep" or self.optimizer.mode != "keep"


class ReinitState(NamedTuple):
    """Everything :func:`model_reinit_schedule` carries from step to step."""

    version: jax.Array  # shape=(), dtype=int32; SCHEMA_VERSION
    # The authoritative cycle table, host numpy (read every step without waiting for the
    # train step); the optimizer state holds its device mirror, written by _adopt_table.
    table: CycleTable
    plateau: PlateauState
    key: jax.Array  # shape=(2,), dtype=uint32; base key of fresh initialisations
    cycle: jax.Array  # shape=(), dtype=int32; newest cycle whose start was handled
    num_resets: jax.Array  # shape=(), dtype=int32
    num_early_stops: jax.Array  # shape=(), dtype=int32


class ReinitEvent(NamedTuple):
    """A record of one early stop or reset, for logs and plots."""

    step: int | float  # int on the steps clock, seconds on the seconds clock
    cycle: int
    kind: str  # "early_stop", "early_stop_skipped", "plateau_metric", "reset", "reset_skipped"
    reason: str
    metrics: dict[str, float]
    old_boundaries: list[float]
    new_boundaries: list[float]


class ReinitOutput(NamedTuple):
    """What :func:`model_reinit_schedule` returns."""

    params: Any
    model_state: Any
    opt_state: Any
    state: ReinitState
    events: tuple[ReinitEvent, ...]


def _raw_key(rng: Any) -> jax.Array:
    key = jnp.asarray(rng)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(
            f"rng must be a raw uint32[2] PRNG key (jax.random.PRNGKey), got dtype {key.dtype} "
            f"and shape {key.shape}"
        )
    return key


def init_reinit_state(config: ReinitConfig, table: CycleTable, rng: Any) -> ReinitState:
    """The state at the start of a run.

    Args:
      config: the reinit configuration.
      table: the run's cycle table (the one the optimizer was built with).
      rng: a raw ``uint32[2]`` key; fresh initialisations derive from it.

    Returns:
      The initial state.
    """
    if not isinstance(table, CycleTable):
        raise _validation.type_error("table", table, "a CycleTable")
    plateau = init_plateau_state(config.plateau or PlateauConfig())
    return ReinitState(
        version=jnp.asarray(SCHEMA_VERSION, jnp.int32),
        table=_host_table(table),
        plateau=plateau,
        key=_raw_key(rng),
        cycle=jnp.zeros([], jnp.int32),
        num_resets=jnp.zeros([], jnp.int32),
        num_early_stops=jnp.zeros([], jnp.int32),
    )


def _host_table(table: CycleTable) -> CycleTable:
    """A host (numpy) copy: never aliased with the optimizer's donated buffers."""
    return jax.tree.map(np.array, table)


def check_reinit_state(state: Any) -> ReinitState:
    """Checks a (restored) state's type and schema version.

    Args:
      state: a :class:`ReinitState`, e.g. restored from a checkpoint.

    Returns:
      The state.

    Raises:
      ValueError: if its schema version is not :data:`SCHEMA_VERSION`.
      TypeError: if it is not a ReinitState.
    """
    if not isinstance(state, ReinitState):
        raise _validation.type_error("state", state, "a ReinitState")
    version = int(np.asarray(state.version))
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"ReinitState has schema version {version}, but this library reads version "
            f"{SCHEMA_VERSION}; restart the run or restore it with the library version that "
            "wrote it"
        )
    return state


def _owning_cycle(table: CycleTable, t: float) -> int:
    start = np.asarray(table.start, np.float64)
    return max(int(np.searchsorted(start, t, side="right")) - 1, 0)


def _plateau_metrics(state: PlateauState) -> dict[str, float]:
    return {
        "smoothed": float(state.smoothed),
        "best": float(state.best),
        "slope": float(state.slope),
        "evals_since_best": float(state.evals_since_best),
    }


def _adopt_table(out: ReinitOutput, table: CycleTable) -> ReinitOutput:
    """Swaps a new cycle table in: the one writer of both copies of the table.

    ``ReinitState.table`` (host numpy) is the authority, read by the host on every
    step without waiting for the train step; the optimizer state holds the device
    mirror that the jitted step reads. Both change here and nowhere else.
    """
    table = _host_table(table)
    return out._replace(state=out.state._replace(table=table),
                        opt_state=replace_table(out.opt_state, table))


def _plateau_event(out: ReinitOutput, when: int | float, kind: str, reason: str,
                   metrics: dict[str, float]) -> ReinitOutput:
    boundaries = out.state.table.boundaries()
    event = ReinitEvent(step=when, cycle=int(np.asarray(out.state.cycle)), kind=kind,
                        reason=reason, metrics=metrics, old_boundaries=boundaries,
                        new_boundaries=boundaries)
    return out._replace(events=(*out.events, event))


def _new_evaluations(out: ReinitOutput, eval_results: EvalResults, t: float,
                     config: ReinitConfig) -> list[tuple[int, Any]]:
    """The checked entries not yet fed (empty on ordinary steps: one comparison)."""
    last = int(np.asarray(out.state.plateau.last_fed_step))
    if eval_results:
        newest = _validation.integer("global_step in eval_results",
                                     _eval_results_entry(eval_results[-1])[0], minimum=0)
        if newest == last:
            return []
        if newest < last:
            raise _validation.value_error(
                "global_step in eval_results", newest,
                f"not lower than the newest evaluation already read (step {last})",
                fix="steps must not go backwards; pass the run's whole eval_results list")
    current = int(t) if config.clock == "steps" else None
    return check_eval_results(eval_results, after=last, global_step=current)


def _choose_metric(config: ReinitConfig, out: ReinitOutput, eval_results: EvalResults,
                   new: list[tuple[int, Any]], workload: Any, when: int | float,
                   ) -> tuple[PlateauConfig | None, ReinitOutput]:
    """The plateau metric, chosen from the first evaluation with validation metrics.

    Recorded as a ``plateau_metric`` event when that evaluation is among the new ones.
    """
    first = next(((s, m) for s, m in (_eval_results_entry(e) for e in eval_results)
                  if isinstance(m, Mapping) and any(
                      isinstance(k, str) and k.startswith("validation/") for k in m)), None)
    if first is None:
        return None, out
    choice = choose_plateau_metric(config.plateau, first[1], workload=workload)
    if first[0] >= new[0][0]:
        out = _plateau_event(out, when, "plateau_metric", choice.reason, {})
    return choice.config, out


def _early_stop(config: ReinitConfig, out: ReinitOutput, eval_results: EvalResults,
                t: float, when: int | float, workload: Any) -> ReinitOutput:
    """The early-stop half: feeds new evaluations; on a trigger ends the cycle at ``t``."""
    if config.plateau is None:
        return out
    new = _new_evaluations(out, eval_results, t, config)
    if not new:
        return out
    state = out.state
    plateau_config, out = _choose_metric(config, out, eval_results, new, workload, when)
    if plateau_config is None:  # nothing to watch: only the cursor moves
        plateau = state.plateau._replace(last_fed_step=np.asarray(new[-1][0], np.int32))
        return out._replace(state=state._replace(plateau=plateau))
    # An evaluation without the chosen metric only moves the cursor (never a crash).
    usable = [(s, m if plateau_config.metric in m else {}) for s, m in new]
    before = int(np.asarray(state.plateau.num_triggers))
    plateau = feed_eval_results(plateau_config, state.plateau, usable)
    out = out._replace(state=state._replace(plateau=plateau))
    if int(np.asarray(plateau.num_triggers)) <= before:
        return out
    result = end_cycle_early(state.table, t, config.redistribution, clock=config.clock)
    reason = PlateauReason(int(np.asarray(plateau.last_reason))).name.lower()
    event = ReinitEvent(
        step=when, cycle=result.cycle,
        kind="early_stop" if result.applied else "early_stop_skipped",
        reason=f"plateau ({reason}, {plateau_config.metric}): {result.reason}",
        metrics=_plateau_metrics(plateau),
        old_boundaries=list(result.old_boundaries),
        new_boundaries=list(result.new_boundaries),
    )
    out = out._replace(events=(*out.events, event))
    if not result.applied:
        return out
    out = _adopt_table(out, result.table)
    return out._replace(state=out.state._replace(
        num_early_stops=_host_int(int(np.asarray(out.state.num_early_stops)) + 1)))


def _reset_strength(config: ReinitConfig, eval_results: EvalResults, workload: Any) -> float:
    strength = config.strength
    if callable(strength):
        strength = strength(eval_results, workload)
    return float(np.clip(np.nan_to_num(float(strength), nan=0.0), 0.0, 1.0))


ResetFn = Callable[..., tuple[Any, Any, Any]]


def make_reset_fn(config: ReinitConfig, workload: Any, *,
                  tx: optax.GradientTransformation | None = None, mask: Any = None,
                  out_shardings: Any = None, jit: bool = True) -> ResetFn:
    """The arrays half of a reset as one function, jitted once per run.

    ``reset(params, model_state, opt_state, key, cycle, fold, strength)`` draws fresh
    parameters from ``workload.init_model_fn`` (with ``fold_in(key, cycle)`` when
    ``fold`` is true, else ``key`` itself), mixes parameters and model state by
    ``config.params`` and resets the optimizer state by ``config.optimizer``; every
    argument is an array, so each reset of a run reuses one executable (eager, the
    same work compiles a dozen small ops on the clock).

    Args:
      config: the reinit configuration.
      workload: provides ``init_model_fn``.
      tx: the optimizer (for ``OptimizerResetPolicy(mode="reinit")``).
      mask: the parameters' reset mask (``param_reset_mask``); ``None`` resolves it
        from the params' structure while tracing.
      out_shardings: ``jax.jit``'s ``out_shardings`` (e.g. replicated).
      jit: ``False`` returns the plain function.

    Returns:
      ``reset(...) -> (params, model_state, opt_state)``.
    """

    def reset(params, model_state, opt_state, key, cycle, fold, strength):
        if config.params.mode != "keep":
            key = jnp.where(fold, jax.random.fold_in(key, cycle), key)
            fresh_params, fresh_model_state = workload.init_model_fn(key)
            selected = mask if mask is not None else param_reset_mask(
                config.params, params, workload=workload)
            params = reset_params(config.params, params, fresh_params, strength, mask=selected)
            model_state = reset_model_state(config.params, model_state, fresh_model_state,
                                            strength)
        opt_state = reset_optimizer_state(config.optimizer, opt_state, params, tx=tx)
        return params, model_state, opt_state

    return jax.jit(reset, out_shardings=out_shardings) if jit else reset


def _host_int(x: Any) -> jax.Array:
    """A counter as a fresh int32 array, computed on the host (no op compiled)."""
    return jax.device_put(np.int32(x))


def _new_cycle(config: ReinitConfig, out: ReinitOutput, t: float, when: int | float, *,
               workload: Any, rng: Any, eval_results: EvalResults,
               tx: optax.GradientTransformation | None, mask: Any,
               reset_fn: ResetFn | None, can_reset: Callable[[], bool] | None,
               ) -> ReinitOutput:
    """The reset half: once a new cycle has begun, resets by the configured policies."""
    cycle = _owning_cycle(out.state.table, t)
    if cycle <= int(np.asarray(out.state.cycle)):
        return out
    plateau = reset_plateau(config.plateau or PlateauConfig(), out.state.plateau)
    state = out.state._replace(cycle=_host_int(cycle), plateau=plateau)
    if not config.resets_anything:
        return out._replace(state=state)
    boundaries = state.table.boundaries()
    if can_reset is not None and not can_reset():
        event = ReinitEvent(step=when, cycle=cycle, kind="reset_skipped",
                            reason=f"cycle {cycle} began: parameters are not finite",
                            metrics={}, old_boundaries=boundaries, new_boundaries=boundaries)
        return out._replace(state=state, events=(*out.events, event))
    strength = _reset_strength(config, eval_results, workload)
    fold = rng is None
    key = state.key if fold else _raw_key(rng)
    if reset_fn is None:
        reset_fn = make_reset_fn(config, workload, tx=tx, mask=mask, jit=False)
    params, model_state, opt_state = reset_fn(
        out.params, out.model_state, out.opt_state, key, np.int32(cycle), np.bool_(fold),
        np.float32(strength))
    event = ReinitEvent(
        step=when, cycle=cycle, kind="reset",
        reason=(f"cycle {cycle} began: params {config.params.mode}, optimizer "
                f"{config.optimizer.mode}"),
        metrics={"strength": strength},
        old_boundaries=boundaries, new_boundaries=boundaries,
    )
    state = state._replace(num_resets=_host_int(int(np.asarray(state.num_resets)) + 1))
    return ReinitOutput(params, model_state, opt_state, state, (*out.events, event))


def model_reinit_schedule(
    global_step: float,
    workload: Any,
    rng: Any,
    hyperparameters: Any,
    eval_results: EvalResults,
    state: ReinitState,
    params: Any,
    model_state: Any,
    opt_state: Any,
    config: ReinitConfig,
    *,
    tx: optax.GradientTransformation | None = None,
    mask: Any = None,
    reset_fn: ResetFn | None = None,
    can_reset: Callable[[], bool] | None = None,
) -> ReinitOutput:
    """Applies early stops and cycle-boundary resets due at ``global_step``.

    Call it from the host once per step, before the train step. On steps where
    nothing happens it returns its inputs unchanged after a few host-side
    comparisons (no device work, no synchronisation with the train step).

    Args:
      global_step: the current step (or time in seconds on the seconds clock).
      workload: provides ``init_model_fn(rng) -> (params, model_state)`` and, for
        selective policies, ``model_params_types`` / ``is_output_params``.
      rng: key for the fresh initialisation at a reset; ``None`` derives one from
        the state's key and the cycle index (reproducible on resume either way
        when the caller's key depends only on the step, as AlgoPerf's does).
      hyperparameters: unused by the default policies; passed to a ``strength``
        callable's workload hooks (kept for the seed's signature).
      eval_results: AlgoPerf's ``eval_results`` list of ``(global_step, metrics)``
        (only ``validation/*`` is read). The plateau metric is chosen from its first
        evaluation (``choose_plateau_metric``; a ``plateau_metric`` event says which);
        an evaluation lacking it is skipped.
      state: the :class:`ReinitState`.
      params: current parameters.
      model_state: current model state (batch-norm statistics and the like).
      opt_state: current optimizer state holding a ``scale_by_cycle_table`` state.
      config: the :class:`ReinitConfig`.
      tx: the optimizer; needed only for ``OptimizerResetPolicy(mode="reinit")``.
      mask: which parameters a reset touches, from
        ``param_reset_mask(config.params, params, workload=workload)``; it depends only
        on the structure of the params, so resolve it once when the run is built
        (it is not part of the state). ``None`` resolves it at every reset.
      reset_fn: the arrays half of a reset from :func:`make_reset_fn` (built once per
        run, so every reset reuses one compiled function); ``None`` runs it eagerly.
      can_reset: called when a new cycle begins (and only then); ``False`` (e.g. the
        parameters are not finite) skips the reset and records ``reset_skipped``.

    Returns:
      :class:`ReinitOutput` ``(params, model_state, opt_state, state, events)``.

    Raises:
      TypeError: ``eval_results`` is not a list of ``(int, dict)`` pairs, or a metric
        value is not a number (a string, say).
      ValueError: ``global_step`` is negative, an evaluation's step is negative,
        lower than the one before (steps going backwards), or later than
        ``global_step`` (steps clock).
    """
    del hyperparameters
    out = ReinitOutput(params, model_state, opt_state, check_reinit_state(state), ())
    t = _validation.real("global_step", global_step)
    if t < 0:
        raise _validation.value_error("global_step", global_step, "a finite number >= 0")
    when = int(global_step) if config.clock == "steps" else t  # event time, as given
    check_kind(eval_results)
    out = _early_stop(config, out, eval_results, t, when, workload)
    return _new_cycle(config, out, t, when, workload=workload, rng=rng,
                      eval_results=eval_results, tx=tx, mask=mask, reset_fn=reset_fn,
                      can_reset=can_reset)
