"""Plateau detection on a validation metric, fed once per evaluation.

An AlgoPerf run gets only ~30-170 evaluations, so every count here (``patience``,
``cooldown``, ``window``, ``min_evals``) is in *evaluations*, never in steps.

The detector is data: :class:`PlateauState` is a ``NamedTuple`` of scalar arrays,
and :func:`update_plateau` / :func:`reset_plateau` are pure functions that are safe
under ``jax.jit`` (fixed shapes, no Python branching on traced values), so feeding a
new metric never recompiles. :class:`PlateauConfig` is static (hashable) and is
validated when it is built.

What one update does with a finite value ``v`` (non-finite values are skipped and
only counted in ``num_skipped``; with ``step`` given, evaluations at a step not newer
than ``last_fed_step`` are ignored altogether):

1. Smoothing (EMA with Adam-style bias correction; ``ema = 0`` means no smoothing)::

       ema_acc <- ema * ema_acc + (1 - ema) * v;  n <- n + 1
       smoothed = ema_acc / (1 - ema ** n)
       slope = smoothed - previous smoothed     (0 for the first value)

   ``n`` and the EMA restart at :func:`reset_plateau`; ``slope`` is per fed value.
2. Improvement (mode ``'min'``; ``'max'`` mirrors it): the first value after init or
   reset is the best; afterwards ``smoothed < best - (rel_threshold * |best| +
   abs_threshold)``. Using ``|best|`` keeps the relative margin a margin for
   negative metrics (optax and PyTorch multiply ``best`` by ``1 - rtol``, which for a
   negative ``best`` accepts a *worse* value as an improvement).
3. Counters: ``evals_since_best`` (0 at an improvement, else +1) and ``num_bad``,
   the patience counter, which additionally is held at 0 while in cooldown and is
   cleared by a trigger (as in optax and PyTorch).
4. Rules (each enabled independently; ``None`` disables):

   * ``PATIENCE``: with ``patience_semantics='optax'`` the detector fires when
     ``num_bad`` reaches ``patience``; optax's ``reduce_on_plateau`` tests
     ``plateau_count == patience``, and since its counter is cleared by every
     trigger it is the same test (we use ``>=`` so that a trigger held back by
     ``min_evals`` fires at the first eligible evaluation). With ``'pytorch'`` it
     fires when ``num_bad > patience`` (``ReduceLROnPlateau``'s ``num_bad_epochs >
     patience``): one evaluation later, which makes ``patience=0`` meaningful
     (fire at the first non-improving evaluation).
   * ``WINDOW`` (the seed's ``epsilon2`` rule): ``evals_since_best >= window`` and
     ``smoothed + slope * window >= best + window_epsilon``: extrapolating the
     current slope over ``window`` more evaluations does not get back to the best.
   * ``SLOPE`` (the seed's ``epsilon`` rule): ``slope > slope_epsilon`` (the smoothed
     metric is rising; ``'max'``: ``slope < -slope_epsilon``).

5. No rule fires during cooldown (``cooldown_count > 0``, counted down by one per
   fed value) or before ``min_evals`` values were fed since init/reset. When several
   rules hold, the reason is the first of PATIENCE, WINDOW, SLOPE. A trigger clears
   ``num_bad``, starts a cooldown of ``cooldown`` evaluations and increments
   ``num_triggers``; it does not clear the best (call :func:`reset_plateau` when the
   new cycle starts).

Host side, ``_eval_results`` reads AlgoPerf's ``eval_results`` and feeds them here.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from optax import safe_int32_increment

from algoperf_reinit import _validation
from algoperf_reinit._validation import INT32_MAX
from algoperf_reinit.run_protocol import BOOKKEEPING_KEYS

__all__ = [
    "AUTO_METRIC",
    "PlateauConfig",
    "PlateauReason",
    "PlateauState",
    "init_plateau_state",
    "reset_plateau",
    "update_plateau",
]

_MODES = ("min", "max")
_SEMANTICS = ("optax", "pytorch")
_SPLITS = ("validation", "test", "train")
_METRIC_RULE = "a validation metric such as 'loss' or 'validation/accuracy', or 'auto'"
AUTO_METRIC = "auto"
"""``PlateauConfig.metric`` that chooses the metric from the first evaluation
(``algoperf_reinit.reinit.choose_plateau_metric``)."""


class PlateauReason(enum.IntEnum):
    """Why the detector fired; stored as an int32 code in the state.

    ``PlateauReason(int(code)).name`` gives the name for an event record.
    """

    NONE = 0
    PATIENCE = 1
    WINDOW = 2
    SLOPE = 3


def _resolve_metric(metric: Any) -> str:
    """Turns ``'loss'`` or ``'validation/loss'`` into ``'validation/loss'``."""
    field = "PlateauConfig.metric"
    if not isinstance(metric, str):
        raise _validation.type_error(field, metric, "a str")
    if metric == AUTO_METRIC:
        return metric
    split, sep, name = metric.partition("/")
    if not sep:
        split, name = "validation", metric
    if split != "validation":
        fix = (
            "only validation metrics may drive decisions"
            if split in _SPLITS
            else "a metric is a bare name like 'loss' or a 'validation/<name>' key"
        )
        raise _validation.value_error(field, metric, "a validation/* metric", fix=fix)
    if not name or "/" in name or name in BOOKKEEPING_KEYS:
        raise _validation.value_error(field, metric, _METRIC_RULE)
    return f"validation/{name}"


@dataclasses.dataclass(frozen=True)
class PlateauConfig:
    """Static, validated configuration of the plateau detector.

    Counts are in evaluations. The rules and their exact semantics are in the
    module docstring. The object is hashable, so it can be a static argument of
    ``jax.jit``.

    Attributes:
      metric: ``'loss'`` or ``'validation/loss'``; stored resolved to the
        ``validation/*`` key. ``test/*`` and ``train/*`` names are rejected.
        ``'auto'`` chooses it (and its direction) from the run's first evaluation
        by a documented preference list (``choose_plateau_metric``); so does a
        configured metric that the evaluation lacks.
      mode: ``'min'`` (loss, error rate) or ``'max'`` (accuracy, BLEU, SSIM);
        with ``metric='auto'`` the chosen metric's direction replaces it.
      ema: EMA smoothing factor in ``[0, 1)``; 0 disables smoothing.
      rel_threshold: relative improvement margin (times ``|best|``), ``>= 0``.
      abs_threshold: absolute improvement margin, ``>= 0``.
      patience: evaluations without improvement for the PATIENCE rule; ``None``
        disables it. ``>= 1`` with ``'optax'`` semantics, ``>= 0`` with ``'pytorch'``.
      cooldown: evaluations after a trigger or a reset during which nothing fires.
      patience_semantics: ``'optax'`` (fire when the count reaches ``patience``) or
        ``'pytorch'`` (fire when it exceeds ``patience``).
      window: evaluations since the best for the WINDOW rule (``>= 1``); ``None``
        disables it.
      window_epsilon: the WINDOW rule's margin (the seed's ``epsilon2``), any finite
        number.
      slope_epsilon: the SLOPE rule's threshold (the seed's ``epsilon``) on the
        per-evaluation slope of the smoothed metric, any finite number; ``None``
        disables the rule.
      min_evals: finite values needed since init/reset before any rule may fire.

    Raises:
      TypeError: a field has the wrong type.
      ValueError: a field is out of range, the metric is not a validation metric,
        or every rule is disabled.

    Example:
      >>> cfg = PlateauConfig(metric="loss", ema=0.5, patience=3, slope_epsilon=0.0)
      >>> cfg.metric
      'validation/loss'
    """

    metric: str = "loss"
    mode: str = "min"
    ema: float = 0.0
    rel_threshold: float = 1e-4
    abs_threshold: float = 0.0
    patience: int | None = 5
    cooldown: int = 0
    patience_semantics: str = "optax"
    window: int | None = None
    window_epsilon: float = 0.0
    slope_epsilon: float | None = None
    min_evals: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        def field(name: str) -> tuple[str, Any]:
            return f"PlateauConfig.{name}", getattr(self, name)

        def count(name: str, minimum: int) -> None:
            put(name, _validation.integer(*field(name), minimum=minimum, maximum=INT32_MAX))

        put("metric", _resolve_metric(self.metric))
        _validation.choice(*field("mode"), _MODES)
        _validation.choice(*field("patience_semantics"), _SEMANTICS)
        put("ema", _validation.unit_interval(*field("ema"), high_open=True))
        put("rel_threshold", _validation.non_negative(*field("rel_threshold")))
        put("abs_threshold", _validation.non_negative(*field("abs_threshold")))
        if self.patience is not None:
            count("patience", 1 if self.patience_semantics == "optax" else 0)
        count("cooldown", 0)
        if self.window is not None:
            count("window", 1)
        put("window_epsilon", _validation.real(*field("window_epsilon")))
        if self.slope_epsilon is not None:
            put("slope_epsilon", _validation.real(*field("slope_epsilon")))
        count("min_evals", 0)
        if self.patience is None and self.window is None and self.slope_epsilon is None:
            raise ValueError(
                "at least one rule must be enabled: set patience, window or slope_epsilon "
                "(all three are None)"
            )

    @property
    def sign(self) -> float:
        """``+1.0`` for mode ``'min'``, ``-1.0`` for ``'max'`` (maps max onto min)."""
        return 1.0 if self.mode == "min" else -1.0


class PlateauState(NamedTuple):
    """The detector's state: scalar arrays only, so it is a jit-stable pytree.

    ``best`` and ``smoothed`` are in the metric's own units (not sign-flipped).
    """

    ema_acc: jax.Array  # shape=(), dtype=float32; biased EMA accumulator
    count: jax.Array  # shape=(), dtype=int32; finite values since init/reset
    smoothed: jax.Array  # shape=(), dtype=float32; latest smoothed value (NaN if none)
    slope: jax.Array  # shape=(), dtype=float32; latest smoothed - previous smoothed
    best: jax.Array  # shape=(), dtype=float32; best smoothed value (+-inf if none)
    evals_since_best: jax.Array  # shape=(), dtype=int32; finite values since the best
    num_bad: jax.Array  # shape=(), dtype=int32; patience counter (0 in cooldown)
    cooldown_count: jax.Array  # shape=(), dtype=int32; evaluations of cooldown left
    num_evals: jax.Array  # shape=(), dtype=int32; finite values fed in total
    num_skipped: jax.Array  # shape=(), dtype=int32; non-finite values ignored
    num_triggers: jax.Array  # shape=(), dtype=int32; triggers in total
    last_reason: jax.Array  # shape=(), dtype=int32; PlateauReason of the latest trigger
    last_fed_step: jax.Array  # shape=(), dtype=int32; global step of the newest eval fed


def _check_config(config: Any) -> None:
    if not isinstance(config, PlateauConfig):
        raise _validation.type_error("config", config, "a PlateauConfig")


def _f32(x: Any) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.float32)


def _i32(x: Any) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.int32)


def _scalar(name: str, x: Any, dtype: Any) -> jax.Array:
    x = jnp.asarray(x)
    if x.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {x.shape}")
    return x.astype(dtype)


def init_plateau_state(config: PlateauConfig) -> PlateauState:
    """A fresh detector: no value seen, no cooldown, ``last_fed_step = -1``.

    Args:
      config: the detector's configuration.

    Returns:
      The initial :class:`PlateauState`.

    Raises:
      TypeError: ``config`` is not a :class:`PlateauConfig`.

    Example:
      >>> state = init_plateau_state(PlateauConfig())
      >>> int(state.count), int(state.last_fed_step)
      (0, -1)
    """
    _check_config(config)
    counters = ("count", "evals_since_best", "num_bad", "cooldown_count", "num_evals",
                "num_skipped", "num_triggers")
    return PlateauState(
        ema_acc=_f32(0.0),
        smoothed=_f32(math.nan),
        slope=_f32(0.0),
        best=_f32(config.sign * math.inf),
        last_reason=_i32(PlateauReason.NONE),
        last_fed_step=_i32(-1),
        **dict.fromkeys(counters, _i32(0)),
    )


def reset_plateau(config: PlateauConfig, state: PlateauState) -> PlateauState:
    """Starts a new cycle: clears the EMA, best, slope and counters; starts cooldown.

    Keeps the run-level counters (``num_evals``, ``num_skipped``, ``num_triggers``,
    ``last_reason``) and ``last_fed_step``. Pure and jit-safe; the returned state has
    the same structure, shapes and dtypes.

    Args:
      config: the detector's configuration.
      state: the current state.

    Returns:
      The state for the new cycle, with ``cooldown_count = config.cooldown``.

    Raises:
      TypeError: ``config`` is not a :class:`PlateauConfig`.

    Example:
      >>> cfg = PlateauConfig(cooldown=2)
      >>> state = reset_plateau(cfg, init_plateau_state(cfg))
      >>> int(state.cooldown_count)
      2
    """
    kept = ("num_evals", "num_skipped", "num_triggers", "last_reason", "last_fed_step")
    return init_plateau_state(config)._replace(
        cooldown_count=_i32(config.cooldown), **{name: _i32(getattr(state, name)) for name in kept}
    )


def _smooth(state: PlateauState, value: jax.Array, ema: float) -> PlateauState:
    """Step 1: the bias-corrected EMA (``count``, ``ema_acc``, ``smoothed``, ``slope``)."""
    count = safe_int32_increment(state.count)
    ema_acc = ema * state.ema_acc + (1.0 - ema) * value
    smoothed = ema_acc / (1.0 - jnp.power(_f32(ema), count.astype(jnp.float32)))
    slope = jnp.where(state.count > 0, smoothed - state.smoothed, _f32(0.0))
    return state._replace(ema_acc=ema_acc, count=count, smoothed=smoothed, slope=slope)


def _track_best(config: PlateauConfig, state: PlateauState, has_prev: jax.Array) -> PlateauState:
    """Steps 2-3: improvement over the best and the counters (before any trigger)."""
    # Improvement, in "minimise" coordinates (z = sign * metric).
    z, z_best = config.sign * state.smoothed, config.sign * state.best
    margin = jnp.where(
        has_prev, config.rel_threshold * jnp.abs(z_best) + config.abs_threshold, _f32(0.0)
    )
    improved = jnp.logical_not(has_prev) | (z < z_best - margin)
    in_cooldown = state.cooldown_count > 0
    return state._replace(
        best=jnp.where(improved, state.smoothed, state.best),
        evals_since_best=jnp.where(
            improved, _i32(0), safe_int32_increment(state.evals_since_best)),
        num_bad=jnp.where(improved | in_cooldown, _i32(0), safe_int32_increment(state.num_bad)),
        cooldown_count=jnp.where(in_cooldown, state.cooldown_count - 1, state.cooldown_count),
    )


def _rule_reason(config: PlateauConfig, state: PlateauState, has_prev: jax.Array) -> jax.Array:
    """Step 4: the first rule that holds for the tracked ``state``, as a reason code."""
    false, sign = jnp.asarray(False), config.sign
    if config.patience is None:
        fire_patience = false
    elif config.patience_semantics == "optax":
        fire_patience = state.num_bad >= config.patience
    else:
        fire_patience = state.num_bad > config.patience
    if config.window is None:
        fire_window = false
    else:
        projected = sign * (state.smoothed + state.slope * config.window)
        fire_window = (state.evals_since_best >= config.window) & (
            projected >= sign * state.best + config.window_epsilon
        )
    if config.slope_epsilon is None:
        fire_slope = false
    else:
        fire_slope = has_prev & (sign * state.slope > config.slope_epsilon)
    reason = jnp.where(fire_slope, _i32(PlateauReason.SLOPE), _i32(PlateauReason.NONE))
    reason = jnp.where(fire_window, _i32(PlateauReason.WINDOW), reason)
    return jnp.where(fire_patience, _i32(PlateauReason.PATIENCE), reason)


def _advance(
    config: PlateauConfig, state: PlateauState, value: jax.Array
) -> tuple[PlateauState, jax.Array, jax.Array]:
    """One update with a finite value (the caller masks out non-finite ones)."""
    has_prev = state.count > 0
    tracked = _track_best(config, _smooth(state, value, config.ema), has_prev)
    # Step 5: nothing fires in cooldown or before min_evals values.
    eligible = (state.cooldown_count <= 0) & (tracked.count >= config.min_evals)
    reason = jnp.where(eligible, _rule_reason(config, tracked, has_prev),
                       _i32(PlateauReason.NONE))
    triggered = reason != PlateauReason.NONE
    new_state = tracked._replace(
        num_bad=jnp.where(triggered, _i32(0), tracked.num_bad),
        cooldown_count=jnp.where(triggered, _i32(config.cooldown), tracked.cooldown_count),
        num_evals=safe_int32_increment(state.num_evals),
        num_triggers=jnp.where(
            triggered, safe_int32_increment(state.num_triggers), state.num_triggers),
        last_reason=jnp.where(triggered, reason, state.last_reason),
    )
    return new_state, triggered, reason


def update_plateau(
    config: PlateauConfig,
    state: PlateauState,
    value: jax.typing.ArrayLike,
    step: jax.typing.ArrayLike | None = None,
) -> tuple[PlateauState, jax.Array, jax.Array]:
    """Feeds one evaluation's metric value to the detector.

    Pure and jit-safe: jit it with ``config`` static
    (``jax.jit(update_plateau, static_argnums=0)``) or closed over
    (``jax.jit(functools.partial(update_plateau, config))``); new values never
    recompile. A NaN or infinite ``value`` leaves the state unchanged except
    ``num_skipped`` (and ``last_fed_step``). With ``step`` given, an evaluation
    whose step is not newer than ``state.last_fed_step`` is ignored entirely, and a
    fed one sets ``last_fed_step = step``.

    Args:
      config: the detector's configuration (static).
      state: the current state.
      value: the metric value, a scalar (cast to float32).
      step: optional global step of the evaluation, a scalar (cast to int32).

    Returns:
      ``(new_state, triggered, reason)``: a bool array of shape ``()`` and the int32
      :class:`PlateauReason` code of this update (``NONE`` when not triggered).

    Raises:
      TypeError: ``config`` is not a :class:`PlateauConfig`.
      ValueError: ``value`` or ``step`` is not a scalar.

    Example:
      >>> cfg = PlateauConfig(patience=2)
      >>> update = jax.jit(update_plateau, static_argnums=0)
      >>> state = init_plateau_state(cfg)
      >>> fired = []
      >>> for v in [3.0, 2.0, 2.0, 2.0, 2.0]:
      ...     state, triggered, reason = update(cfg, state, v)
      ...     fired.append(PlateauReason(int(reason)).name)
      >>> fired
      ['NONE', 'NONE', 'NONE', 'PATIENCE', 'NONE']
    """
    _check_config(config)
    value = _scalar("value", value, jnp.float32)
    finite = jnp.isfinite(value)
    if step is None:
        fresh = jnp.asarray(True)
        fed_step = state.last_fed_step
    else:
        fed_step = _scalar("step", step, jnp.int32)
        fresh = fed_step > state.last_fed_step
    # A non-finite value must not poison the arithmetic of the discarded branch.
    advanced, triggered, reason = _advance(config, state, jnp.where(finite, value, 0.0))
    advanced = advanced._replace(last_fed_step=fed_step)
    skipped = state._replace(num_skipped=safe_int32_increment(state.num_skipped), last_fed_step=fed_step)
    accept = finite & fresh

    def pick(a: jax.Array, s: jax.Array, old: jax.Array) -> jax.Array:
        return jnp.where(accept, a, jnp.where(fresh, s, old)).astype(old.dtype)

    old = PlateauState(*(jnp.asarray(x) for x in state))
    new_state = jax.tree_util.tree_map(pick, advanced, skipped, old)
    return (
        new_state,
        accept & triggered,
        jnp.where(accept, reason, _i32(PlateauReason.NONE)),
    )
