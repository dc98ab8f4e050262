"""Decay kinds, each declared once: its named parameters, its table row and its curve.

Everything that depends on the kind of a decay reads its one :class:`DecayKind` in
:data:`KINDS`:

* :class:`~algoperf_reinit.schedules.Decay` takes the kind's parameters (a field of
  another kind is an error) and fills their defaults (:func:`resolve`);
* :func:`pack` writes the parameters into the kind's table row, ``decay_params[i]``,
  one column per parameter in the order declared (unused columns are 0);
* :func:`decay_value` reads the row back by name (:func:`unpack`) and evaluates the
  kind's curve;
* :func:`rescale` stretches the parameters that are lengths (``measured_against``)
  when an early stop gives a cycle a new length (``reinit.end_cycle_early``).

The row layout is fixed: three float32 columns (:data:`NUM_DECAY_PARAMS`) and an
int32 :class:`DecayId`, stored in tables and checkpoints. Adding a shape is a new
``DecayId`` member (appended, so stored ids keep their meaning), one ``DecayKind``
here, a field of :class:`~algoperf_reinit.schedules.Decay` per new parameter name,
and a ``Decay`` constructor.

Conventions (``t`` is the time since the start of the cycle): a decay starts at
``t = begin`` (normally the warmup length ``W``) at ``peak`` and ends at ``t = L``,
the cycle length. A kind's curve is either the fraction of ``peak - end`` left
(the value is ``end + (peak - end) * curve``) or, for a law of its own
(``floored``), a factor of ``peak`` floored at ``end``.
"""

from __future__ import annotations

import enum
import functools
import operator
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit import _validation

__all__ = [
    "KINDS",
    "NUM_DECAY_PARAMS",
    "PARAM_NAMES",
    "TINY",
    "WSD_KINDS",
    "DecayId",
    "DecayKind",
    "DecayParam",
    "DecayPhase",
    "Encoding",
    "decay_value",
    "pack",
    "rescale",
    "resolve",
    "unpack",
]

# Small positive number that keeps divisions finite in branches that are computed
# but not selected (every kind's curve is computed, then one is selected by id).
TINY = 1e-30

NUM_DECAY_PARAMS = 3
"""Width of the per-cycle decay parameter row in a cycle table."""

WSD_KINDS = ("linear", "1-sqrt")
"""Tails of the warmup-stable-decay shape; stored as their index."""


class DecayId(enum.IntEnum):
    """Integer ids of decay shapes, as stored in a cycle table."""

    CONSTANT = 0
    COSINE = 1
    LINEAR = 2
    POLYNOMIAL = 3
    EXPONENTIAL = 4
    RSQRT = 5
    WSD = 6


class Encoding(NamedTuple):
    """How a parameter value is stored in its float32 column and read back."""

    encode: Callable[[Any], float]  # host value -> column value
    decode: Callable[[jax.Array], jax.Array]  # traced column -> what the curve uses


REAL = Encoding(float, lambda column: column)
FLAG = Encoding(float, lambda column: column != 0.0)  # True / False as 1.0 / 0.0
WSD_TAIL = Encoding(  # a name of WSD_KINDS as its index (0.0 or 1.0)
    lambda name: float(WSD_KINDS.index(name)),
    lambda column: column,
)


class DecayParam(NamedTuple):
    """One named parameter of a decay kind.

    Attributes:
      name: the parameter, also the :class:`~algoperf_reinit.schedules.Decay` field.
      default: filled in when the field is ``None``. ``None`` here means the value
        comes from the cycle: ``measured_against(decay_length, warmup)``.
      check: validates a given value: ``check(field, value) -> value``.
      measured_against: for a length, the length of the cycle it is measured
        against, from ``(decay_length, warmup)``; it is its default, and when an
        early stop resizes the cycle the parameter is scaled by the same factor
        (so a default stays the default). ``None`` for scale-free parameters.
      minimum: floor applied when the value is stored (keeps a division finite).
      encoding: how the value is stored in the row and read back.
    """

    name: str
    default: Any
    check: Callable[[str, Any], Any]
    measured_against: Callable[[float, float], float] | None = None
    minimum: float | None = None
    encoding: Encoding = REAL


class DecayPhase(NamedTuple):
    """What every kind's curve is computed from (traced, elementwise)."""

    t: jax.Array  # time since the start of the cycle
    length: jax.Array  # cycle length L
    begin: jax.Array  # time at which the decay's progress is 0
    elapsed: jax.Array  # time since the decay began, in [0, L - begin]
    progress: jax.Array  # elapsed / (L - begin), in [0, 1]


Curve = Callable[[DecayPhase, Mapping[str, jax.Array]], jax.Array]


class DecayKind(NamedTuple):
    """One decay shape: its name, table id, parameters and curve.

    Attributes:
      name: the shape name (``Decay(name)``).
      shape_id: its id in the table.
      params: its parameters; column ``j`` of the table row holds ``params[j]``.
      curve: ``curve(phase, params_by_name)``: the fraction of ``peak - end`` left,
        or for a ``floored`` kind the factor of ``peak``.
      power: the parameter the curve is raised to, if any (one ``jnp.power``
        serves every kind that has one).
      floored: the kind has a law of its own, floored at the end value.
      reaches_end: the value is exactly ``end`` at the end of the cycle.
    """

    name: str
    shape_id: DecayId
    params: tuple[DecayParam, ...]
    curve: Curve
    power: str | None = None
    floored: bool = False
    reaches_end: bool = True


def _rate(field: str, value: Any) -> float:
    return _validation.in_range(field, value, 0.0, 1.0, low_open=True)


def _fraction(field: str, value: Any) -> float:
    return _validation.unit_interval(field, value, low_open=True)


def _wsd_kind(field: str, value: Any) -> str:
    return _validation.choice(field, value, WSD_KINDS)


def _decay_phase(decay_length: float, warmup: float) -> float:
    del warmup
    return decay_length


def _warmup_at_least_one(decay_length: float, warmup: float) -> float:
    del decay_length
    return max(warmup, 1.0)


def _constant(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    return jnp.ones_like(phase.progress)


def _cosine(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    return 0.5 + 0.5 * jnp.cos(jnp.pi * jnp.power(phase.progress, p["k_decay"]))


def _linear(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    return 1.0 - phase.progress


def _polynomial(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    return 1.0 - phase.progress


def _exponential(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    steps = phase.elapsed / jnp.maximum(p["transition_steps"], TINY)
    steps = jnp.where(p["staircase"], jnp.floor(steps), steps)
    return jnp.power(p["rate"], steps)


def _rsqrt(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    tau = p["timescale"]
    return jnp.sqrt(tau / jnp.maximum(tau + phase.elapsed, TINY))


def _wsd(phase: DecayPhase, p: Mapping[str, jax.Array]) -> jax.Array:
    # The final decay_fraction * L of the cycle decays (never before ``begin``).
    length = phase.length
    window = jnp.maximum(length - p["decay_fraction"] * length, phase.begin)
    q = jnp.clip((phase.t - window) / jnp.maximum(length - window, TINY), 0.0, 1.0)
    sqrt_tail = p["wsd_kind"] == WSD_KINDS.index("1-sqrt")
    return jnp.where(sqrt_tail, 1.0 - jnp.sqrt(q), 1.0 - q)


_ALL_KINDS = (
    DecayKind("constant", DecayId.CONSTANT, (), _constant, reaches_end=False),
    DecayKind("cosine", DecayId.COSINE, (
        DecayParam("exponent", 1.0, _validation.positive),
        DecayParam("k_decay", 1.0, _validation.positive),
    ), _cosine, power="exponent"),
    DecayKind("linear", DecayId.LINEAR, (), _linear),
    DecayKind("polynomial", DecayId.POLYNOMIAL, (DecayParam("power", 2.0, _validation.positive),),
              _polynomial, power="power"),
    DecayKind("exponential", DecayId.EXPONENTIAL, (
        DecayParam("transition_steps", None, _validation.positive, _decay_phase, minimum=TINY),
        DecayParam("rate", 0.5, _rate),
        DecayParam("staircase", False, _validation.boolean, encoding=FLAG),
    ), _exponential, floored=True, reaches_end=False),
    DecayKind("rsqrt", DecayId.RSQRT, (
        DecayParam("timescale", None, _validation.positive, _warmup_at_least_one),
    ), _rsqrt, floored=True, reaches_end=False),
    DecayKind("wsd", DecayId.WSD, (
        DecayParam("decay_fraction", 0.2, _fraction),
        DecayParam("wsd_kind", "linear", _wsd_kind, encoding=WSD_TAIL),
    ), _wsd),
)

KINDS: Mapping[str, DecayKind] = types.MappingProxyType({k.name: k for k in _ALL_KINDS})
"""Every decay kind by name, in id order."""

_BY_ID: Mapping[int, DecayKind] = types.MappingProxyType(
    {int(k.shape_id): k for k in _ALL_KINDS}
)
PARAM_NAMES: tuple[str, ...] = tuple(p.name for k in _ALL_KINDS for p in k.params)
"""Every parameter name of every kind (the kind-specific fields of ``Decay``)."""


def _takers(name: str) -> list[str]:
    return [k.name for k in _ALL_KINDS if any(p.name == name for p in k.params)]


def resolve(kind: DecayKind, given: Mapping[str, Any], owner: str = "Decay") -> dict[str, Any]:
    """Validates the parameters given for ``kind`` and fills its defaults.

    Args:
      kind: the decay kind.
      given: a value or ``None`` for every name of :data:`PARAM_NAMES`.
      owner: prefix of the field names in messages.

    Returns:
      Every name of :data:`PARAM_NAMES`: the kind's parameters validated (defaults
      filled), ``None`` for the others.

    Raises:
      ValueError: for a parameter the kind does not take (naming the field, the
        kind and the kinds that take it), or a value out of its range.
      TypeError: for a value of the wrong type.
    """
    own = {p.name: p for p in kind.params}
    resolved: dict[str, Any] = {}
    for name in PARAM_NAMES:
        value = given.get(name)
        if name not in own:
            if value is not None:
                takers = " or ".join(repr(k) for k in _takers(name))
                raise _validation.value_error(
                    f"{owner}.{name}", value,
                    f"None with kind {kind.name!r} (only kind {takers} takes it)",
                    fix=f"drop it, or choose kind {takers}",
                )
            resolved[name] = None
            continue
        param = own[name]
        value = param.default if value is None else value
        resolved[name] = None if value is None else param.check(f"{owner}.{name}", value)
    return resolved


def pack(kind: DecayKind, values: Mapping[str, Any], decay_length: float,
         warmup: float) -> tuple[float, ...]:
    """The table row of a decay: its parameters in declared order, then zeros.

    Args:
      kind: the decay kind.
      values: its parameter values by name (from :func:`resolve`).
      decay_length: length of the decay phase of the cycle (clock units).
      warmup: warmup length of the cycle (clock units).

    Returns:
      :data:`NUM_DECAY_PARAMS` floats.
    """
    row = [0.0] * NUM_DECAY_PARAMS
    for column, param in enumerate(kind.params):
        value = values[param.name]
        if value is None:
            value = param.measured_against(decay_length, warmup)
        value = param.encoding.encode(value)
        row[column] = value if param.minimum is None else max(value, param.minimum)
    return tuple(row)


def unpack(kind: DecayKind, params: jax.Array) -> dict[str, jax.Array]:
    """The parameters of ``kind`` read by name from table rows (last axis)."""
    return {p.name: p.encoding.decode(params[..., column])
            for column, p in enumerate(kind.params)}


def rescale(shape_id: int, row: np.ndarray, old: tuple[float, float],
            new: tuple[float, float]) -> np.ndarray:
    """A table row with its length parameters scaled to a resized cycle (host-side).

    Args:
      shape_id: the row's :class:`DecayId`.
      row: the row, shape ``(NUM_DECAY_PARAMS,)``.
      old: ``(decay_length, warmup)`` of the cycle before.
      new: the same after.

    Returns:
      A new row (same dtype): each parameter with a ``measured_against`` length is
      multiplied by ``measured_against(*new) / measured_against(*old)``; the others,
      and rows of an unknown id, are kept.
    """
    out = np.array(row, copy=True)
    kind = _BY_ID.get(int(shape_id))
    for column, param in enumerate(kind.params if kind is not None else ()):
        if param.measured_against is None:
            continue
        factor = param.measured_against(*new) / param.measured_against(*old)
        value = float(row[column]) * factor
        out[column] = value if param.minimum is None else max(value, param.minimum)
    return out


def decay_value(shape_id, t, length, begin, peak, end, params):
    """Value of a decay at time ``t`` in ``[begin, L]`` (elementwise in ``t``).

    Every kind's curve is computed from shared pieces and one is selected by id: the
    id is data, so changing it never recompiles (a ``lax.switch`` over one function
    per kind costs twice the compile time and, under ``vmap``, evaluates every
    branch anyway).

    Args:
      shape_id: a :class:`DecayId` (int32, traced or static).
      t: time since the start of the cycle.
      length: cycle length ``L``.
      begin: time at which the decay's progress is 0.
      peak: value at ``t = begin``.
      end: end value (interpolating kinds) or floor (``floored`` kinds).
      params: the table rows (:func:`pack`), last axis.

    Returns:
      float32 values.
    """
    span = jnp.maximum(length - begin, 0.0)
    elapsed = jnp.clip(t - begin, 0.0, span)
    phase = DecayPhase(t, length, begin, elapsed, elapsed / jnp.maximum(span, TINY))
    named = {k.name: unpack(k, params) for k in _ALL_KINDS}
    is_kind = {k.name: shape_id == k.shape_id for k in _ALL_KINDS}

    def select(kinds: list[DecayKind], values: list[jax.Array]) -> jax.Array:
        return jnp.select([is_kind[k.name] for k in kinds], values, 1.0)

    def curves(kinds: list[DecayKind]) -> jax.Array:
        return select(kinds, [k.curve(phase, named[k.name]) for k in kinds])

    def any_of(kinds: list[DecayKind]) -> jax.Array:
        return functools.reduce(operator.or_, [is_kind[k.name] for k in kinds])

    between = [k for k in _ALL_KINDS if not k.floored]
    powered = [k for k in between if k.power is not None]
    floored = [k for k in _ALL_KINDS if k.floored]
    base = curves(between)
    exponent = select(powered, [named[k.name][k.power] for k in powered])
    fraction = jnp.where(any_of(powered), jnp.power(base, exponent), base)
    return jnp.where(any_of(floored), jnp.maximum(peak * curves(floored), end),
                     end + (peak - end) * fraction)
