"""NAdamW and AdamW as optax transformations, with or without the learning rate.

NAdamW here follows the AlgoPerf baseline, i.e. the simplified NAdam of Choi et
al., "On empirical comparisons of optimizers for deep learning"
(arXiv:1910.05446, Table 1): no momentum-decay schedule, standard Adam bias
correction. For a gradient ``g`` at step ``t = 1, 2, ...``::

    m_t = b1 * m_{t-1} + (1 - b1) * g
    v_t = b2 * v_{t-1} + (1 - b2) * g**2
    m_hat = (b1 * m_t + (1 - b1) * g) / (1 - b1**t)     # Nesterov look-ahead
    v_hat = v_t / (1 - b2**t)
    direction = m_hat / (sqrt(v_hat + eps_root) + eps)

The look-ahead uses the *updated* ``m_t`` and both of its terms are debiased by
the same ``1 - b1**t``. The full update is decoupled weight decay scaled by the
learning rate, as in the AlgoPerf baselines (and PyTorch)::

    update = -lr_t * (direction + weight_decay * param)

where ``lr_t`` is ``learning_rate`` or ``learning_rate(count)`` with ``count``
starting at 0 for the first update.

How this differs from ``optax.nadamw``: optax debiases the two look-ahead terms
separately, ``b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)``. For a
constant gradient (and ``eps`` negligible) the directions are therefore
``b1 + (1 - b1) / (1 - b1**t)`` here and
``b1 * (1 - b1**t) / (1 - b1**(t+1)) + (1 - b1) / (1 - b1**t)`` in optax; with
``b1 = 0.9`` that is 1.900 vs 1.474 at ``t = 1`` (x1.289), 1.426 vs 1.157 at
``t = 2`` (x1.232), 1.144 vs 1.031 at ``t = 5`` (x1.110), x1.045 at ``t = 10``,
x1.012 at ``t = 20``, x1.004 at ``t = 30``; both tend to 1. Only the ``b1 * m_t``
term differs (``1 / (1 - b1**t)`` here vs ``1 / (1 - b1**(t+1))``), so the gap
shrinks like ``b1**t`` and is below 0.1% after ~50 steps; ``v_hat`` is identical.
``tests/test_optim.py`` measures it.

Note on ``eps`` (from our reading of the paper, not re-checked offline): Table 1
writes the debiasing as one factor ``sqrt(1 - b2**t) / (1 - b1**t)`` in front of
``(...) / (sqrt(v_t) + eps)``, i.e. ``eps`` is added before debiasing; the
baseline and this module add it to ``sqrt(v_hat)``. The two differ only through
the effective size of ``eps`` in early steps.

Each optimizer comes in two forms:

* :func:`nadamw_direction` / :func:`adamw_direction`: the preconditioned
  direction including the weight-decay term, *without* the ``-lr`` scaling, for
  callers that compute the learning rate themselves (e.g. from a cycle table kept
  in their own state) and apply ``params - lr * direction``.
* :func:`nadamw` / :func:`adamw`: the direction followed by
  ``optax.scale_by_learning_rate(learning_rate)``.

AlgoPerf tuning spaces give ``one_minus_beta1`` rather than ``b1``; every
constructor accepts either (but not both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from algoperf_reinit import _validation
from algoperf_reinit.schedules._scale import scale_by_cycle_table
from algoperf_reinit.schedules._table import CycleTable, check_clock

__all__ = [
    "ScaleByNadamState",
    "adamw",
    "adamw_direction",
    "nadamw",
    "nadamw_direction",
    "scale_by_nadam",
]

_DEFAULT_B1 = 0.9

WeightDecayMask = Any | Callable[[optax.Params], Any] | None
LearningRate = float | optax.Schedule | CycleTable


class ScaleByNadamState(NamedTuple):
    """State of :func:`scale_by_nadam`.

    Attributes:
      count: number of updates applied so far, saturating at the int32 maximum.
      mu: first moment (EMA of gradients), same tree, shapes and dtypes as params.
      nu: second moment (EMA of squared gradients), likewise.
    """

    count: jax.Array  # shape=(), dtype=int32
    mu: optax.Updates
    nu: optax.Updates


def _decay_rate(field: str, value: Any) -> float:
    """An EMA decay (``b1``, ``b2``) in ``[0, 1)``."""
    return _validation.unit_interval(field, value, high_open=True)


def _resolve_b1(b1: float | None, one_minus_beta1: float | None) -> float:
    """Returns ``b1`` from exactly one of ``b1`` / ``one_minus_beta1`` (default 0.9)."""
    if b1 is not None and one_minus_beta1 is not None:
        raise ValueError(
            f"give b1 or one_minus_beta1, not both (got b1={b1!r}, "
            f"one_minus_beta1={one_minus_beta1!r})"
        )
    if one_minus_beta1 is not None:
        return 1.0 - _validation.unit_interval("one_minus_beta1", one_minus_beta1, low_open=True)
    if b1 is None:
        return _DEFAULT_B1
    return _decay_rate("b1", b1)


def _one_minus_power(b: float, t: jax.Array) -> jax.Array:
    """``1 - b**t`` for ``t >= 1``, accurate in float32 even for ``b`` close to 1.

    ``1 - b**t`` in float32 loses ~1e-5 relative accuracy for ``b = 0.999`` at
    small ``t`` (``b`` itself is rounded); ``-expm1(t * log(b))`` with ``log(b)``
    taken in float64 does not.
    """
    if b == 0.0:
        return jnp.ones_like(t)
    return -jnp.expm1(t * math.log(b))


def _ema(decay: float, moments: optax.Updates, values: optax.Updates) -> optax.Updates:
    """``decay * m + (1 - decay) * value``, cast back to each moment's stored dtype."""
    return jax.tree.map(lambda v, m: (decay * m + (1.0 - decay) * v).astype(m.dtype),
                        values, moments)


def scale_by_nadam(
    b1: float = _DEFAULT_B1,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    debias: bool = True,
) -> optax.GradientTransformation:
    """Rescales gradients by the simplified NAdam rule of the AlgoPerf baseline.

    See the module docstring for the formula. Moments keep the dtype they were
    created with (the params' dtype): new moments are cast back to it, so the
    state's avals never change between steps (safe under ``lax.scan``/``cond``).

    Args:
      b1: decay of the first-moment EMA, in ``[0, 1)``.
      b2: decay of the second-moment EMA, in ``[0, 1)``.
      eps: added to ``sqrt(v_hat)`` in the denominator, ``>= 0``.
      eps_root: added to ``v_hat`` inside the square root, ``>= 0``.
      debias: whether to divide by ``1 - b1**t`` and ``1 - b2**t``.

    Returns:
      An ``optax.GradientTransformation`` whose state is :class:`ScaleByNadamState`.

    Raises:
      TypeError: if a hyperparameter is not a real number (or ``debias`` not a bool).
      ValueError: if a hyperparameter is NaN, infinite or outside its range.
    """
    b1, b2 = _decay_rate("b1", b1), _decay_rate("b2", b2)
    eps = _validation.non_negative("eps", eps)
    eps_root = _validation.non_negative("eps_root", eps_root)
    debias = _validation.boolean("debias", debias)

    def init_fn(params: optax.Params) -> ScaleByNadamState:
        return ScaleByNadamState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(jnp.zeros_like, params),
            nu=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(
        updates: optax.Updates, state: ScaleByNadamState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, ScaleByNadamState]:
        del params
        count = optax.safe_int32_increment(state.count)
        t = count.astype(jnp.float32)
        if debias:
            m_scale = 1.0 / _one_minus_power(b1, t)
            v_scale = 1.0 / _one_minus_power(b2, t)
        else:
            m_scale = v_scale = 1.0
        # New moments are cast back to the stored dtype (bf16 moments stay bf16).
        mu = _ema(b1, state.mu, updates)
        nu = _ema(b2, state.nu, jax.tree.map(jnp.square, updates))

        def direction(g, m, v):
            m_hat = (b1 * m + (1.0 - b1) * g) * m_scale  # look-ahead with the updated m
            v_hat = v * v_scale
            return (m_hat / (jnp.sqrt(v_hat + eps_root) + eps)).astype(g.dtype)

        directions = jax.tree.map(direction, updates, mu, nu)
        return directions, ScaleByNadamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def _scale_by_adam(b1: float, b2: float, eps: float, eps_root: float
                   ) -> optax.GradientTransformation:
    """``optax.scale_by_adam`` with its hyperparameters checked like :func:`scale_by_nadam`'s."""
    return optax.scale_by_adam(
        b1=b1, b2=_decay_rate("b2", b2), eps=_validation.non_negative("eps", eps),
        eps_root=_validation.non_negative("eps_root", eps_root),
    )


def _decoupled_direction(
    scale_by: Callable[..., optax.GradientTransformation],
    b1: float | None,
    one_minus_beta1: float | None,
    weight_decay: float,
    weight_decay_mask: WeightDecayMask,
    **moments: Any,
) -> optax.GradientTransformation:
    """``chain(scale_by(b1, **moments), add_decayed_weights(weight_decay, mask))``.

    The shared part of every direction: ``b1`` from ``b1`` or ``one_minus_beta1``
    and decoupled weight decay added after the preconditioned direction.
    """
    direction = scale_by(b1=_resolve_b1(b1, one_minus_beta1), **moments)
    weight_decay = _validation.non_negative("weight_decay", weight_decay)
    return optax.chain(direction, optax.add_decayed_weights(weight_decay, weight_decay_mask))


def _scale_by_learning_rate(learning_rate: LearningRate, clock: str
                            ) -> optax.GradientTransformation:
    """``-learning_rate`` scaling; a :class:`CycleTable` is kept in the optimizer state."""
    if isinstance(learning_rate, CycleTable):
        return scale_by_cycle_table(learning_rate, clock)
    if check_clock(clock) != "steps":
        raise ValueError(
            f"clock={clock!r} needs learning_rate to be a CycleTable (a plain schedule is a "
            "function of the step count)"
        )
    return optax.scale_by_learning_rate(learning_rate)


def _with_learning_rate(
    direction_fn: Callable[..., optax.GradientTransformation],
    learning_rate: LearningRate,
    clock: str,
    **direction: Any,
) -> optax.GradientTransformation:
    """``chain(direction_fn(**direction), <-learning_rate scaling>)``.

    The shared part of every full optimizer: the learning rate is checked first
    (``None`` points to ``direction_fn``, which is what a caller that applies the
    rate itself wants).
    """
    if learning_rate is None:
        raise _validation.type_error(
            "learning_rate", learning_rate, "a number or an optax.Schedule",
            fix=f"to apply a learning rate yourself use {direction_fn.__name__}(...) and "
            "update params by -lr * direction",
        )
    if not callable(learning_rate):
        _validation.non_negative("learning_rate", learning_rate)
    return optax.chain(direction_fn(**direction), _scale_by_learning_rate(learning_rate, clock))


def nadamw_direction(
    b1: float | None = None, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
    weight_decay_mask: WeightDecayMask = None, *, one_minus_beta1: float | None = None,
    eps_root: float = 0.0, debias: bool = True,
) -> optax.GradientTransformation:
    """NAdamW without the learning rate: ``nadam_direction + weight_decay * param``.

    Apply as ``params - lr * direction`` (``optax.apply_updates(params, -lr * d)``).

    Args:
      b1: first-moment decay in ``[0, 1)``; default 0.9. Exclusive with
        ``one_minus_beta1``.
      b2: second-moment decay in ``[0, 1)`` (AlgoPerf's ``beta2``).
      eps: see :func:`scale_by_nadam`.
      weight_decay: decoupled weight-decay coefficient, ``>= 0``.
      weight_decay_mask: as in ``optax.add_decayed_weights``: a tree of bools
        (or a callable returning one); ``True`` leaves are decayed.
      one_minus_beta1: AlgoPerf's ``one_minus_beta1`` in ``(0, 1]``;
        ``b1 = 1 - one_minus_beta1``.
      eps_root: see :func:`scale_by_nadam`.
      debias: see :func:`scale_by_nadam`.

    Returns:
      ``optax.chain(scale_by_nadam(...), optax.add_decayed_weights(...))``; its
      state is ``(ScaleByNadamState, <add_decayed_weights state>)``.

    Raises:
      TypeError: if a hyperparameter has the wrong type.
      ValueError: if a hyperparameter is out of range or both ``b1`` and
        ``one_minus_beta1`` are given.
    """
    return _decoupled_direction(scale_by_nadam, b1, one_minus_beta1, weight_decay,
                                weight_decay_mask, b2=b2, eps=eps, eps_root=eps_root,
                                debias=debias)


def nadamw(
    learning_rate: LearningRate, b1: float | None = None, b2: float = 0.999, eps: float = 1e-8,
    weight_decay: float = 0.0, weight_decay_mask: WeightDecayMask = None, *,
    one_minus_beta1: float | None = None, eps_root: float = 0.0, debias: bool = True,
    clock: str = "steps",
) -> optax.GradientTransformation:
    """NAdamW of the AlgoPerf baseline: ``-lr * (nadam_direction + weight_decay * param)``.

    Args:
      learning_rate: a number ``>= 0``, an ``optax.Schedule`` of the update count
        (0 for the first update), or a :class:`CycleTable`, which is then held in
        the optimizer state (:func:`algoperf_reinit.schedules.scale_by_cycle_table`)
        so that :func:`algoperf_reinit.schedules.replace_table` can change the
        schedule without recompiling the train step.
      b1: see :func:`nadamw_direction`.
      b2: see :func:`nadamw_direction`.
      eps: see :func:`nadamw_direction`.
      weight_decay: see :func:`nadamw_direction` (multiplied by the learning rate).
      weight_decay_mask: see :func:`nadamw_direction`.
      one_minus_beta1: see :func:`nadamw_direction`.
      eps_root: see :func:`nadamw_direction`.
      debias: see :func:`nadamw_direction`.
      clock: for a :class:`CycleTable`, ``"steps"`` or ``"seconds"`` (see
        :func:`algoperf_reinit.schedules.set_clock_time`).

    Returns:
      ``optax.chain(nadamw_direction(...), <learning-rate scaling>)``.

    Raises:
      TypeError: if ``learning_rate`` is None (use :func:`nadamw_direction`) or a
        hyperparameter has the wrong type.
      ValueError: if a hyperparameter is out of range.
    """
    return _with_learning_rate(
        nadamw_direction, learning_rate, clock, b1=b1, b2=b2, eps=eps,
        weight_decay=weight_decay, weight_decay_mask=weight_decay_mask,
        one_minus_beta1=one_minus_beta1, eps_root=eps_root, debias=debias)


def adamw_direction(
    b1: float | None = None, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
    weight_decay_mask: WeightDecayMask = None, *, one_minus_beta1: float | None = None,
    eps_root: float = 0.0,
) -> optax.GradientTransformation:
    """AdamW without the learning rate: ``adam_direction + weight_decay * param``.

    The Adam part is ``optax.scale_by_adam`` (state ``optax.ScaleByAdamState``).
    Unlike ``optax.adamw`` the default ``weight_decay`` is 0, as in AlgoPerf.

    Args:
      b1: first-moment decay in ``[0, 1)``; default 0.9. Exclusive with
        ``one_minus_beta1``.
      b2: second-moment decay in ``[0, 1)``.
      eps: added to ``sqrt(v_hat)``, ``>= 0``.
      weight_decay: decoupled weight-decay coefficient, ``>= 0``.
      weight_decay_mask: as in ``optax.add_decayed_weights``.
      one_minus_beta1: ``b1 = 1 - one_minus_beta1``, in ``(0, 1]``.
      eps_root: added to ``v_hat`` inside the square root, ``>= 0``.

    Returns:
      ``optax.chain(optax.scale_by_adam(...), optax.add_decayed_weights(...))``.

    Raises:
      TypeError: if a hyperparameter has the wrong type.
      ValueError: if a hyperparameter is out of range or both ``b1`` and
        ``one_minus_beta1`` are given.
    """
    return _decoupled_direction(_scale_by_adam, b1, one_minus_beta1, weight_decay,
                                weight_decay_mask, b2=b2, eps=eps, eps_root=eps_root)


def adamw(
    learning_rate: LearningRate, b1: float | None = None, b2: float = 0.999, eps: float = 1e-8,
    weight_decay: float = 0.0, weight_decay_mask: WeightDecayMask = None, *,
    one_minus_beta1: float | None = None, eps_root: float = 0.0, clock: str = "steps",
) -> optax.GradientTransformation:
    """AdamW: ``-lr * (adam_direction + weight_decay * param)``, same maths as ``optax.adamw``.

    Args:
      learning_rate: a number ``>= 0``, an ``optax.Schedule`` of the update count, or
        a :class:`CycleTable` held in the optimizer state (see :func:`nadamw`).
      b1: see :func:`adamw_direction`.
      b2: see :func:`adamw_direction`.
      eps: see :func:`adamw_direction`.
      weight_decay: see :func:`adamw_direction` (multiplied by the learning rate).
      weight_decay_mask: see :func:`adamw_direction`.
      one_minus_beta1: see :func:`adamw_direction`.
      eps_root: see :func:`adamw_direction`.
      clock: see :func:`nadamw`.

    Returns:
      ``optax.chain(adamw_direction(...), <learning-rate scaling>)``.

    Raises:
      TypeError: if ``learning_rate`` is None (use :func:`adamw_direction`) or a
        hyperparameter has the wrong type.
      ValueError: if a hyperparameter is out of range.
    """
    return _with_learning_rate(
        adamw_direction, learning_rate, clock, b1=b1, b2=b2, eps=eps,
        weight_decay=weight_decay, weight_decay_mask=weight_decay_mask,
        one_minus_beta1=one_minus_beta1, eps_root=eps_root)
