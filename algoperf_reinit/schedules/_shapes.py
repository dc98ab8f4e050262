"""Warmup and decay shapes: small descriptors plus one pure formula each.

A shape is a frozen descriptor (``Warmup`` or ``Decay``) that names a formula and
holds its parameters. Inside a cycle table a shape is stored as data: an int32
*shape id* and a few float32 parameters, so switching the shape of a cycle never
recompiles anything. Each formula is a pure function of the time inside the cycle.

Conventions (``t`` is the time since the start of the cycle, in the clock's unit):

* A warmup runs over ``[0, W)`` from ``init`` towards ``peak`` and reaches ``peak``
  exactly at ``t = W`` (every warmup shape is continuous at its end).
* A decay starts at ``t = decay_begin`` (normally ``W``) at ``peak`` and ends at
  ``t = L`` (the cycle length). Interpolating decays (cosine, linear, polynomial,
  warmup-stable-decay) reach ``end`` at ``t = L``; decays with a law of their own
  (exponential, inverse square root) use ``end`` as a floor.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

# Small positive number that keeps divisions finite in branches that are computed
# but not selected (``lax.switch`` under ``vmap`` evaluates every branch).
_TINY = 1e-30


class WarmupId(enum.IntEnum):
    """Integer ids of warmup shapes, as stored in a cycle table."""

    NONE = 0
    LINEAR = 1
    COSINE = 2
    EXPONENTIAL = 3
    POLYNOMIAL = 4
    LOG = 5


class DecayId(enum.IntEnum):
    """Integer ids of decay shapes, as stored in a cycle table."""

    CONSTANT = 0
    COSINE = 1
    LINEAR = 2
    POLYNOMIAL = 3
    EXPONENTIAL = 4
    RSQRT = 5
    WSD = 6


NUM_DECAY_PARAMS = 3
"""Width of the per-cycle decay parameter row in a cycle table."""


def _check_finite(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Warmup:
    """A warmup shape.

    Build one with the constructors below (``Warmup.linear()``, ...) or by name
    with :func:`warmup_shape`.

    Attributes:
      kind: shape name, one of ``WARMUP_NAMES``.
      power: exponent of the ``polynomial`` warmup (``(t/W)**power``).
    """

    kind: str = "linear"
    power: float = 2.0

    def __post_init__(self):
        if self.kind not in _WARMUP_IDS:
            raise ValueError(
                f"warmup shape {self.kind!r} is unknown; valid names: {', '.join(WARMUP_NAMES)}"
            )
        power = _check_finite("Warmup.power", self.power)
        if power <= 0:
            raise ValueError(f"Warmup.power must be > 0, got {power!r}")
        object.__setattr__(self, "power", power)

    @property
    def shape_id(self) -> int:
        """Integer id stored in the cycle table."""
        return int(_WARMUP_IDS[self.kind])

    @classmethod
    def none(cls) -> Warmup:
        """No warmup: the cycle starts at its peak (its warmup length is 0)."""
        return cls("none")

    @classmethod
    def linear(cls) -> Warmup:
        """``init + (peak - init) * t / W``."""
        return cls("linear")

    @classmethod
    def cosine(cls) -> Warmup:
        """Half cosine: ``init + (peak - init) * (1 - cos(pi t / W)) / 2``."""
        return cls("cosine")

    @classmethod
    def exponential(cls) -> Warmup:
        """Geometric: ``init * (peak / init) ** (t / W)``; needs ``init > 0``."""
        return cls("exponential")

    @classmethod
    def polynomial(cls, power: float = 2.0) -> Warmup:
        """``init + (peak - init) * (t / W) ** power``."""
        return cls("polynomial", power=power)

    @classmethod
    def log(cls) -> Warmup:
        """DeepSpeed-style log warmup normalised to reach the peak at ``t = W``.

        ``init + (peak - init) * log(t + 1) / log(W + 1)``.
        """
        return cls("log")


@dataclasses.dataclass(frozen=True)
class Decay:
    """A decay shape.

    Build one with the constructors below (``Decay.cosine()``, ...) or by name
    with :func:`decay_shape`.

    Attributes:
      kind: shape name, one of ``DECAY_NAMES``.
      exponent: cosine only; the cosine factor is raised to this power (optax's
        ``exponent``).
      k_decay: cosine only; progress ``p`` enters as ``p ** k_decay`` (timm's
        ``k_decay``).
      power: polynomial only; ``(1 - p) ** power``.
      rate: exponential only; factor per ``transition_steps``, in ``(0, 1]``.
      transition_steps: exponential only; clock units per factor of ``rate``.
        ``None`` means the length of the decay phase (the value reaches
        ``peak * rate`` at the end of the cycle, unless floored by ``end``).
      staircase: exponential only; decay in discrete steps (optax's ``staircase``).
      timescale: inverse square root only; ``peak * sqrt(tau / (tau + d))`` where
        ``d`` is the time since the decay began. ``None`` means the cycle's warmup
        length (at least 1), the usual ``peak * sqrt(W / t)`` form.
      decay_fraction: warmup-stable-decay only; fraction of the cycle taken by the
        final decay, in ``(0, 1]``.
      wsd_kind: warmup-stable-decay only; ``"linear"`` or ``"1-sqrt"``.
    """

    kind: str = "cosine"
    exponent: float = 1.0
    k_decay: float = 1.0
    power: float = 2.0
    rate: float = 0.5
    transition_steps: float | None = None
    staircase: bool = False
    timescale: float | None = None
    decay_fraction: float = 0.2
    wsd_kind: str = "linear"

    def __post_init__(self):
        if self.kind not in _DECAY_IDS:
            raise ValueError(
                f"decay shape {self.kind!r} is unknown; valid names: {', '.join(DECAY_NAMES)}"
            )
        for name in ("exponent", "k_decay", "power"):
            value = _check_finite(f"Decay.{name}", getattr(self, name))
            if value <= 0:
                raise ValueError(f"Decay.{name} must be > 0, got {value!r}")
            object.__setattr__(self, name, value)
        rate = _check_finite("Decay.rate", self.rate)
        if not 0 < rate <= 1:
            raise ValueError(f"Decay.rate must be in (0, 1] (a decay), got {rate!r}")
        object.__setattr__(self, "rate", rate)
        for name in ("transition_steps", "timescale"):
            value = getattr(self, name)
            if value is not None:
                value = _check_finite(f"Decay.{name}", value)
                if value <= 0:
                    raise ValueError(f"Decay.{name} must be > 0 or None, got {value!r}")
                object.__setattr__(self, name, value)
        fraction = _check_finite("Decay.decay_fraction", self.decay_fraction)
        if not 0 < fraction <= 1:
            raise ValueError(f"Decay.decay_fraction must be in (0, 1], got {fraction!r}")
        object.__setattr__(self, "decay_fraction", fraction)
        if self.wsd_kind not in _WSD_KINDS:
            raise ValueError(
                f"Decay.wsd_kind {self.wsd_kind!r} is unknown; valid: {', '.join(_WSD_KINDS)}"
            )
        if not isinstance(self.staircase, bool):
            raise TypeError(f"Decay.staircase must be a bool, got {self.staircase!r}")

    @property
    def shape_id(self) -> int:
        """Integer id stored in the cycle table."""
        return int(_DECAY_IDS[self.kind])

    def params(self, decay_length: float, warmup: float) -> tuple[float, float, float]:
        """The three float parameters stored in the cycle table for this shape.

        Args:
          decay_length: length of the decay phase of the cycle (clock units).
          warmup: warmup length of the cycle (clock units).

        Returns:
          The parameter row; its meaning depends on the shape.
        """
        if self.kind == "cosine":
            return (self.exponent, self.k_decay, 0.0)
        if self.kind == "polynomial":
            return (self.power, 0.0, 0.0)
        if self.kind == "exponential":
            steps = self.transition_steps if self.transition_steps is not None else decay_length
            return (max(steps, _TINY), self.rate, float(self.staircase))
        if self.kind == "rsqrt":
            tau = self.timescale if self.timescale is not None else max(warmup, 1.0)
            return (tau, 0.0, 0.0)
        if self.kind == "wsd":
            return (self.decay_fraction, float(_WSD_KINDS.index(self.wsd_kind)), 0.0)
        return (0.0, 0.0, 0.0)

    @property
    def interpolates(self) -> bool:
        """Whether the shape reaches the end value exactly at the end of the cycle."""
        return self.kind in ("cosine", "linear", "polynomial", "wsd")

    @classmethod
    def constant(cls) -> Decay:
        """Stay at the peak for the whole decay phase."""
        return cls("constant")

    @classmethod
    def cosine(cls, exponent: float = 1.0, k_decay: float = 1.0) -> Decay:
        """``end + (peak - end) * ((1 + cos(pi * p**k_decay)) / 2) ** exponent``."""
        return cls("cosine", exponent=exponent, k_decay=k_decay)

    @classmethod
    def linear(cls) -> Decay:
        """``peak + (end - peak) * p``."""
        return cls("linear")

    @classmethod
    def polynomial(cls, power: float = 2.0) -> Decay:
        """``end + (peak - end) * (1 - p) ** power`` (optax's ``polynomial_schedule``)."""
        return cls("polynomial", power=power)

    @classmethod
    def exponential(
        cls, rate: float = 0.5, transition_steps: float | None = None, staircase: bool = False
    ) -> Decay:
        """``max(peak * rate ** (d / transition_steps), end)``; ``d`` = time since decay began."""
        return cls(
            "exponential", rate=rate, transition_steps=transition_steps, staircase=staircase
        )

    @classmethod
    def rsqrt(cls, timescale: float | None = None) -> Decay:
        """Inverse square root: ``max(peak * sqrt(tau / (tau + d)), end)``."""
        return cls("rsqrt", timescale=timescale)

    @classmethod
    def wsd(cls, decay_fraction: float = 0.2, wsd_kind: str = "linear") -> Decay:
        """Warmup-stable-decay: stay at the peak, then decay over the last fraction.

        The final ``decay_fraction * L`` of the cycle decays to ``end``, linearly or
        as ``1 - sqrt(q)`` (``wsd_kind="1-sqrt"``, Hägele et al. 2024).
        """
        return cls("wsd", decay_fraction=decay_fraction, wsd_kind=wsd_kind)


_WARMUP_IDS: Mapping[str, WarmupId] = types.MappingProxyType(
    {member.name.lower(): member for member in WarmupId}
)
_DECAY_IDS: Mapping[str, DecayId] = types.MappingProxyType(
    {member.name.lower(): member for member in DecayId}
)
_WSD_KINDS = ("linear", "1-sqrt")
WARMUP_NAMES: tuple[str, ...] = tuple(_WARMUP_IDS)
DECAY_NAMES: tuple[str, ...] = tuple(_DECAY_IDS)


def warmup_shape(spec: Any, field: str = "warmup shape") -> Warmup:
    """Converts a name, a :class:`Warmup` or an object with a ``.shape`` to a Warmup.

    Args:
      spec: ``"linear"``, ``Warmup.cosine()``, or a piece returned by ``warmup_fn``.
      field: name used in error messages.

    Returns:
      The warmup shape.

    Raises:
      ValueError: for an unknown name (the message lists the valid names).
      TypeError: for anything else.
    """
    if isinstance(spec, Warmup):
        return spec
    if isinstance(spec, str):
        if spec not in _WARMUP_IDS:
            raise ValueError(
                f"{field} {spec!r} is unknown; valid names: {', '.join(WARMUP_NAMES)}"
            )
        return Warmup(spec)
    if isinstance(getattr(spec, "shape", None), Warmup):
        return spec.shape
    raise TypeError(
        f"{field} must be a shape name ({', '.join(WARMUP_NAMES)}), a Warmup or the object "
        f"warmup_fn returns; got {spec!r} of type {type(spec).__name__}"
    )


def decay_shape(spec: Any, field: str = "decay shape") -> Decay:
    """Converts a name, a :class:`Decay` or an object with a ``.shape`` to a Decay.

    Args:
      spec: ``"cosine"``, ``Decay.wsd(0.1)``, or a piece returned by ``decay_fn``.
      field: name used in error messages.

    Returns:
      The decay shape.

    Raises:
      ValueError: for an unknown name (the message lists the valid names).
      TypeError: for anything else.
    """
    if isinstance(spec, Decay):
        return spec
    if isinstance(spec, str):
        if spec not in _DECAY_IDS:
            raise ValueError(f"{field} {spec!r} is unknown; valid names: {', '.join(DECAY_NAMES)}")
        return Decay(spec)
    if isinstance(getattr(spec, "shape", None), Decay):
        return spec.shape
    raise TypeError(
        f"{field} must be a shape name ({', '.join(DECAY_NAMES)}), a Decay or the object "
        f"decay_fn returns; got {spec!r} of type {type(spec).__name__}"
    )


# ----------------------------------------------------------------------------
# Formulas. One function per phase computes every shape with shared pieces and
# selects by shape id; a shape id is data, so changing it never recompiles. (A
# ``lax.switch`` over one function per shape costs twice the compile time and, under
# ``vmap``, evaluates every branch anyway.)
# ----------------------------------------------------------------------------


def warmup_value(shape_id, t, w, init, peak, power):
    """Value of a warmup at time ``t`` in ``[0, W]`` (elementwise in ``t``).

    Args:
      shape_id: a :class:`WarmupId` (int32, traced or static).
      t: time since the start of the cycle.
      w: warmup length ``W``.
      init: value at ``t = 0``.
      peak: value at ``t = W``.
      power: exponent of the polynomial warmup.

    Returns:
      float32 values; ``peak`` for :attr:`WarmupId.NONE`.
    """
    r = jnp.clip(t / jnp.maximum(w, _TINY), 0.0, 1.0)
    fraction = jnp.select(
        [shape_id == WarmupId.LINEAR, shape_id == WarmupId.COSINE,
         shape_id == WarmupId.POLYNOMIAL, shape_id == WarmupId.LOG],
        [r, 0.5 - 0.5 * jnp.cos(jnp.pi * r), jnp.power(r, power),
         jnp.log1p(t) / jnp.maximum(jnp.log1p(w), _TINY)],
        1.0,
    )
    log_init = jnp.log(jnp.maximum(init, _TINY))
    geometric = jnp.exp(log_init + (jnp.log(jnp.maximum(peak, _TINY)) - log_init) * r)
    return jnp.where(shape_id == WarmupId.EXPONENTIAL, geometric, init + (peak - init) * fraction)


def decay_value(shape_id, t, length, begin, peak, end, params):
    """Value of a decay at time ``t`` in ``[begin, L]`` (elementwise in ``t``).

    Args:
      shape_id: a :class:`DecayId` (int32, traced or static).
      t: time since the start of the cycle.
      length: cycle length ``L``.
      begin: time at which the decay's progress is 0.
      peak: value at ``t = begin``.
      end: end value (interpolating shapes) or floor (exponential, rsqrt).
      params: the three parameters of :meth:`Decay.params` (last axis).

    Returns:
      float32 values.
    """
    p0, p1, p2 = params[..., 0], params[..., 1], params[..., 2]
    span = jnp.maximum(length - begin, 0.0)
    elapsed = jnp.clip(t - begin, 0.0, span)
    p = elapsed / jnp.maximum(span, _TINY)
    # Warmup-stable-decay: the final p0 * L of the cycle (not before ``begin``).
    window = jnp.maximum(length - p0 * length, begin)
    q = jnp.clip((t - window) / jnp.maximum(length - window, _TINY), 0.0, 1.0)
    is_cosine = shape_id == DecayId.COSINE
    base = jnp.where(is_cosine, 0.5 + 0.5 * jnp.cos(jnp.pi * jnp.power(p, p1)), 1.0 - p)
    # Fraction of (peak - end) left, for the shapes that reach ``end`` at ``L``.
    interpolated = jnp.select(
        [is_cosine | (shape_id == DecayId.POLYNOMIAL), shape_id == DecayId.LINEAR,
         shape_id == DecayId.WSD],
        [jnp.power(base, p0), base, jnp.where(p1 > 0.5, 1.0 - jnp.sqrt(q), 1.0 - q)],
        1.0,
    )
    # Factor of ``peak`` for the shapes with a law of their own, floored at ``end``.
    steps = elapsed / jnp.maximum(p0, _TINY)
    steps = jnp.where(p2 > 0.5, jnp.floor(steps), steps)
    factor = jnp.where(
        shape_id == DecayId.EXPONENTIAL,
        jnp.power(p1, steps),
        jnp.sqrt(p0 / jnp.maximum(p0 + elapsed, _TINY)),
    )
    is_law = (shape_id == DecayId.EXPONENTIAL) | (shape_id == DecayId.RSQRT)
    return jnp.where(is_law, jnp.maximum(peak * factor, end), end + (peak - end) * interpolated)
