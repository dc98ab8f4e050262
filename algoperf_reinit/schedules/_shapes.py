"""Warmup and decay shapes: small descriptors plus one pure formula each.

A shape is a frozen descriptor (``Warmup`` or ``Decay``) that names a formula and
holds its parameters. Inside a cycle table a shape is stored as data: an int32
*shape id* and a few float32 parameters, so switching the shape of a cycle never
recompiles anything. Each formula is a pure function of the time inside the cycle.
What a decay kind takes, stores and computes is declared once per kind in
``_decays``.

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
import types
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from algoperf_reinit import _validation
from algoperf_reinit.schedules import _decays
from algoperf_reinit.schedules._decays import NUM_DECAY_PARAMS, TINY, DecayId, decay_value

__all__ = [
    "DECAY_NAMES",
    "NUM_DECAY_PARAMS",
    "WARMUP_NAMES",
    "Decay",
    "DecayId",
    "Warmup",
    "WarmupId",
    "decay_shape",
    "decay_value",
    "warmup_shape",
    "warmup_value",
]


class WarmupId(enum.IntEnum):
    """Integer ids of warmup shapes, as stored in a cycle table."""

    NONE = 0
    LINEAR = 1
    COSINE = 2
    EXPONENTIAL = 3
    POLYNOMIAL = 4
    LOG = 5


_WARMUP_IDS: Mapping[str, WarmupId] = types.MappingProxyType(
    {member.name.lower(): member for member in WarmupId}
)
WARMUP_NAMES: tuple[str, ...] = tuple(_WARMUP_IDS)
DECAY_NAMES: tuple[str, ...] = tuple(_decays.KINDS)


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
        _validation.choice("Warmup.kind", self.kind, WARMUP_NAMES)
        object.__setattr__(self, "power", _validation.positive("Warmup.power", self.power))

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


@dataclasses.dataclass(frozen=True, repr=False)
class Decay:
    """A decay shape: a kind and that kind's named parameters.

    Build one with the constructors below (``Decay.cosine()``, ...), by name with
    :func:`decay_shape`, or as ``Decay(kind, **parameters)``. Every parameter belongs
    to one kind; the fields of the other kinds stay ``None`` and giving one is a
    ``ValueError`` that names the kind taking it. A parameter left ``None`` is
    filled with its kind's default, so ``Decay("cosine") == Decay.cosine()`` (shapes
    are hashable, and are used as static data). Changing the kind of a shape with
    ``dataclasses.replace`` therefore also needs the old kind's parameters set to
    ``None``.

    Attributes:
      kind: shape name, one of ``DECAY_NAMES``.
      exponent: ``cosine`` only (default 1); the cosine factor is raised to this
        power (optax's ``exponent``).
      k_decay: ``cosine`` only (default 1); progress ``p`` enters as
        ``p ** k_decay`` (timm's ``k_decay``).
      power: ``polynomial`` only (default 2); ``(1 - p) ** power``.
      rate: ``exponential`` only (default 0.5); factor per ``transition_steps``,
        in ``(0, 1]``.
      transition_steps: ``exponential`` only; clock units per factor of ``rate``.
        ``None`` means the length of the decay phase (the value reaches
        ``peak * rate`` at the end of the cycle, unless floored by ``end``).
      staircase: ``exponential`` only (default False); decay in discrete steps
        (optax's ``staircase``).
      timescale: ``rsqrt`` only; ``peak * sqrt(tau / (tau + d))`` where ``d`` is the
        time since the decay began. ``None`` means the cycle's warmup length (at
        least 1), the usual ``peak * sqrt(W / t)`` form.
      decay_fraction: ``wsd`` only (default 0.2); fraction of the cycle taken by
        the final decay, in ``(0, 1]``.
      wsd_kind: ``wsd`` only (default ``"linear"``); ``"linear"`` or ``"1-sqrt"``.

    Raises:
      ValueError: for an unknown kind, a parameter of another kind, or a value out
        of its range.
      TypeError: for a value of the wrong type.

    Example:
      >>> Decay.exponential(rate=0.1).rate
      0.1
      >>> Decay("cosine", rate=0.3)
      Traceback (most recent call last):
      ...
      ValueError: Decay.rate must be None with kind 'cosine' (only kind 'exponential' \
takes it), got 0.3; drop it, or choose kind 'exponential'
    """

    kind: str = "cosine"
    exponent: float | None = None
    k_decay: float | None = None
    power: float | None = None
    rate: float | None = None
    transition_steps: float | None = None
    staircase: bool | None = None
    timescale: float | None = None
    decay_fraction: float | None = None
    wsd_kind: str | None = None

    def __post_init__(self):
        kind = _decays.KINDS[_validation.choice("Decay.kind", self.kind, DECAY_NAMES)]
        given = {name: getattr(self, name) for name in _decays.PARAM_NAMES}
        for name, value in _decays.resolve(kind, given).items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        # The kind and its own parameters; the other kinds' fields are always None.
        own = [p.name for p in _decays.KINDS[self.kind].params]
        return "Decay(" + ", ".join([repr(self.kind)] + [f"{n}={getattr(self, n)!r}"
                                                         for n in own]) + ")"

    @property
    def shape_id(self) -> int:
        """Integer id stored in the cycle table."""
        return int(_decays.KINDS[self.kind].shape_id)

    def params(self, decay_length: float, warmup: float) -> tuple[float, float, float]:
        """The three float parameters stored in the cycle table for this shape.

        Args:
          decay_length: length of the decay phase of the cycle (clock units).
          warmup: warmup length of the cycle (clock units).

        Returns:
          The parameter row: this kind's parameters in the order ``_decays``
          declares them (defaults that depend on the cycle worked out), then zeros.
        """
        values = {name: getattr(self, name) for name in _decays.PARAM_NAMES}
        return _decays.pack(_decays.KINDS[self.kind], values, decay_length, warmup)

    @property
    def interpolates(self) -> bool:
        """Whether the shape reaches the end value exactly at the end of the cycle."""
        return _decays.KINDS[self.kind].reaches_end

    @classmethod
    def constant(cls, **others: Any) -> Decay:
        """Stay at the peak for the whole decay phase.

        ``others`` here and in every constructor below: parameters of other kinds,
        which are rejected with a ``ValueError`` naming the kind that takes them.
        """
        return cls("constant", **others)

    @classmethod
    def cosine(cls, exponent: float = 1.0, k_decay: float = 1.0, **others: Any) -> Decay:
        """``end + (peak - end) * ((1 + cos(pi * p**k_decay)) / 2) ** exponent``."""
        return cls("cosine", exponent=exponent, k_decay=k_decay, **others)

    @classmethod
    def linear(cls, **others: Any) -> Decay:
        """``peak + (end - peak) * p``."""
        return cls("linear", **others)

    @classmethod
    def polynomial(cls, power: float = 2.0, **others: Any) -> Decay:
        """``end + (peak - end) * (1 - p) ** power`` (optax's ``polynomial_schedule``)."""
        return cls("polynomial", power=power, **others)

    @classmethod
    def exponential(cls, rate: float = 0.5, transition_steps: float | None = None,
                    staircase: bool = False, **others: Any) -> Decay:
        """``max(peak * rate ** (d / transition_steps), end)``; ``d`` = time since decay began."""
        return cls("exponential", rate=rate, transition_steps=transition_steps,
                   staircase=staircase, **others)

    @classmethod
    def rsqrt(cls, timescale: float | None = None, **others: Any) -> Decay:
        """Inverse square root: ``max(peak * sqrt(tau / (tau + d)), end)``."""
        return cls("rsqrt", timescale=timescale, **others)

    @classmethod
    def wsd(cls, decay_fraction: float = 0.2, wsd_kind: str = "linear",
            **others: Any) -> Decay:
        """Warmup-stable-decay: stay at the peak, then decay over the last fraction.

        The final ``decay_fraction * L`` of the cycle decays to ``end``, linearly or
        as ``1 - sqrt(q)`` (``wsd_kind="1-sqrt"``, Hägele et al. 2024).
        """
        return cls("wsd", decay_fraction=decay_fraction, wsd_kind=wsd_kind, **others)


def _shape(spec: Any, field: str, cls: type, names: tuple[str, ...], builder: str) -> Any:
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        return cls(_validation.choice(field, spec, names))
    if isinstance(getattr(spec, "shape", None), cls):
        return spec.shape
    raise _validation.type_error(
        field, spec,
        f"a shape name ({', '.join(names)}), a {cls.__name__} or the object {builder} returns",
    )


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
    return _shape(spec, field, Warmup, WARMUP_NAMES, "warmup_fn")


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
    return _shape(spec, field, Decay, DECAY_NAMES, "decay_fn")


# ----------------------------------------------------------------------------
# The warmup formula: one function computes every shape with shared pieces and
# selects by shape id; a shape id is data, so changing it never recompiles. (The
# decay formula is ``_decays.decay_value``.)
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
    r = jnp.clip(t / jnp.maximum(w, TINY), 0.0, 1.0)
    fraction = jnp.select(
        [shape_id == WarmupId.LINEAR, shape_id == WarmupId.COSINE,
         shape_id == WarmupId.POLYNOMIAL, shape_id == WarmupId.LOG],
        [r, 0.5 - 0.5 * jnp.cos(jnp.pi * r), jnp.power(r, power),
         jnp.log1p(t) / jnp.maximum(jnp.log1p(w), TINY)],
        1.0,
    )
    log_init = jnp.log(jnp.maximum(init, TINY))
    geometric = jnp.exp(log_init + (jnp.log(jnp.maximum(peak, TINY)) - log_init) * r)
    return jnp.where(shape_id == WarmupId.EXPONENTIAL, geometric, init + (peak - init) * fraction)
