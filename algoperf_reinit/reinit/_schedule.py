"""``model_reinit_schedule``: early cycle stops and resets at cycle boundaries.

Called once per training step from the host (e.g. at the top of AlgoPerf's
``update_params``), :func:`model_reinit_schedule` does nothing on ordinary steps
and, on the rare steps where something happens:

1. feeds new ``validation/*`` results to the plateau detector; on a trigger it ends
   the current cycle at this step and redistributes the remaining budget over the
   cycles still to run (:func:`end_cycle_early`), then swaps the new cycle table into
   the optimizer state (same shapes: the train step is not recompiled);
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

from algoperf_reinit.reinit._eval_results import feed_eval_results, latest_validation_value
from algoperf_reinit.reinit._optimizer_reset import OptimizerResetPolicy, reset_optimizer_state
from algoperf_reinit.reinit._param_reset import (
    ParamResetPolicy,
    param_reset_mask,
    reset_model_state,
    reset_params,
)
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

SCHEMA_VERSION = 1
"""Version of the :class:`ReinitState` layout; bumped when fields change."""

Strength = float | Callable[[Sequence[tuple[int, Mapping[str, Any]]], Any], float]


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
        seed's metric-driven ``reset_metric``; see :func:`metric_strength`).
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
            ("params", ParamResetPolicy),
            ("optimizer", OptimizerResetPolicy),
            ("redistribution", Redistribution),
        )
        for name, cls in checks:
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        if self.plateau is not None and not isinstance(self.plateau, PlateauConfig):
            raise TypeError(
                f"plateau must be a PlateauConfig or None, got {type(self.plateau).__name__}"
            )
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {self.clock!r}")
        if not callable(self.strength):
            value = self.strength
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"strength must be a number or a callable, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"strength must be in [0, 1], got {value!r}")

    @property
    def resets_anything(self) -> bool:
        """Whether a new cycle changes parameters, model state or optimizer state."""
        return self.params.mode != "keep" or self.optimizer.mode != "keep"


class ReinitState(NamedTuple):
    """Everything :func:`model_reinit_schedule` carries from step to step."""

    version: jax.Array  # shape=(), dtype=int32; SCHEMA_VERSION
    table: CycleTable  # the authoritative cycle table, host numpy (the optimizer holds a copy)
    plateau: PlateauState
    key: jax.Array  # shape=(2,), dtype=uint32; base key of fresh initialisations
    cycle: jax.Array  # shape=(), dtype=int32; newest cycle whose start was handled
    num_resets: jax.Array  # shape=(), dtype=int32
    num_early_stops: jax.Array  # shape=(), dtype=int32


class ReinitEvent(NamedTuple):
    """A record of one early stop or reset, for logs and plots."""

    step: int | float  # int on the steps clock, seconds on the seconds clock
    cycle: int
    kind: str  # "early_stop", "early_stop_skipped" or "reset"
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
        raise TypeError(f"table must be a CycleTable, got {type(table).__name__}")
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
        raise TypeError(f"state must be a ReinitState, got {type(state).__name__}")
    version = int(np.asarray(state.version))
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"ReinitState has schema version {version}, but this library reads version "
            f"{SCHEMA_VERSION}; restart the run or restore it with the library version that "
            "wrote it"
        )
    return state


def metric_strength(
    mode: str, full_at: float = 1.0, metric: str | None = None
) -> Callable[[Sequence[tuple[int, Mapping[str, Any]]], Any], float]:
    """A ``strength`` callable driven by the latest validation target metric.

    Resets more strongly the further the metric is from the workload's
    ``validation_target_value`` (see :func:`strength_from_metric`).

    Args:
      mode: ``"min"`` (loss-like) or ``"max"`` (accuracy-like).
      full_at: relative gap to the target at which the strength reaches 1.
      metric: the ``validation/*`` metric; ``None`` means the workload's
        ``target_metric_name``.

    Returns:
      ``strength(eval_results, workload) -> float`` in ``[0, 1]``; 0 before any
      evaluation.
    """
    from algoperf_reinit.reinit._param_reset import strength_from_metric

    def strength(eval_results, workload) -> float:
        name = metric or getattr(workload, "target_metric_name", None)
        if name is None or not eval_results:
            return 0.0
        found = latest_validation_value(eval_results, PlateauConfig(metric=name))
        if found is None:
            return 0.0
        target = float(workload.validation_target_value)
        return strength_from_metric(found[1], target, mode, full_at=full_at)

    return strength


def _boundaries(table: CycleTable) -> list[float]:
    return table.boundaries()


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


def model_reinit_schedule(
    global_step: float,
    workload: Any,
    rng: Any,
    hyperparameters: Any,
    eval_results: Sequence[tuple[int, Mapping[str, Any]]],
    state: ReinitState,
    params: Any,
    model_state: Any,
    opt_state: Any,
    config: ReinitConfig,
    *,
    tx: optax.GradientTransformation | None = None,
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
      eval_results: AlgoPerf's ``eval_results`` (only ``validation/*`` is read).
      state: the :class:`ReinitState`.
      params: current parameters.
      model_state: current model state (batch-norm statistics and the like).
      opt_state: current optimizer state holding a ``scale_by_cycle_table`` state.
      config: the :class:`ReinitConfig`.
      tx: the optimizer; needed only for ``OptimizerResetPolicy(mode="reinit")``.

    Returns:
      :class:`ReinitOutput` ``(params, model_state, opt_state, state, events)``.
    """
    del hyperparameters
    state = check_reinit_state(state)
    t = float(global_step)
    when = int(global_step) if config.clock == "steps" else t  # event time, as given
    events: list[ReinitEvent] = []
    table = state.table

    if config.plateau is not None and eval_results:
        newest = int(eval_results[-1][0])
        if newest > int(np.asarray(state.plateau.last_fed_step)):
            before = int(np.asarray(state.plateau.num_triggers))
            plateau = feed_eval_results(config.plateau, state.plateau, eval_results)
            state = state._replace(plateau=plateau)
            if int(np.asarray(plateau.num_triggers)) > before:
                result = end_cycle_early(table, t, config.redistribution, clock=config.clock)
                reason = PlateauReason(int(np.asarray(plateau.last_reason))).name.lower()
                events.append(ReinitEvent(
                    step=when, cycle=result.cycle,
                    kind="early_stop" if result.applied else "early_stop_skipped",
                    reason=f"plateau ({reason}): {result.reason}",
                    metrics=_plateau_metrics(plateau),
                    old_boundaries=list(result.old_boundaries),
                    new_boundaries=list(result.new_boundaries),
                ))
                if result.applied:
                    table = _host_table(result.table)
                    opt_state = replace_table(opt_state, table)
                    state = state._replace(
                        table=table, num_early_stops=state.num_early_stops + 1
                    )

    cycle = _owning_cycle(table, t)
    if cycle > int(np.asarray(state.cycle)):
        boundaries = _boundaries(table)
        plateau = reset_plateau(config.plateau or PlateauConfig(), state.plateau)
        state = state._replace(cycle=jnp.asarray(cycle, jnp.int32), plateau=plateau)
        if config.resets_anything:
            params, model_state, opt_state, strength = _reset(
                config, workload, rng, eval_results, state, cycle, params, model_state,
                opt_state, tx,
            )
            state = state._replace(num_resets=state.num_resets + 1)
            events.append(ReinitEvent(
                step=when, cycle=cycle, kind="reset",
                reason=(f"cycle {cycle} began: params {config.params.mode}, optimizer "
                        f"{config.optimizer.mode}"),
                metrics={"strength": strength},
                old_boundaries=boundaries, new_boundaries=boundaries,
            ))
    return ReinitOutput(params, model_state, opt_state, state, tuple(events))


def _reset(config, workload, rng, eval_results, state, cycle, params, model_state, opt_state,
           tx):
    strength = config.strength(eval_results, workload) if callable(config.strength) else (
        config.strength)
    strength = float(np.clip(np.nan_to_num(float(strength), nan=0.0), 0.0, 1.0))
    needs_fresh = config.params.mode != "keep"
    if needs_fresh:
        key = jax.random.fold_in(state.key, cycle) if rng is None else _raw_key(rng)
        fresh_params, fresh_model_state = workload.init_model_fn(key)
        mask = param_reset_mask(
            config.params, params,
            params_types=getattr(workload, "model_params_types", None)
            if config.params.param_types else None,
            is_output_params=getattr(workload, "is_output_params", None)
            if config.params.output_layer is not None else None,
        )
        params = reset_params(config.params, params, fresh_params, strength, mask=mask)
        model_state = reset_model_state(config.params, model_state, fresh_model_state, strength)
    opt_state = reset_optimizer_state(config.optimizer, opt_state, params, tx=tx)
    return params, model_state, opt_state, strength
