"""What a reset does to the model parameters and the model state: the policies.

A reset mixes the live parameters ``p`` with a *fresh* initialisation ``f`` that
the caller supplies (under AlgoPerf: ``workload.init_model_fn(rng)``), by the mode
of a :class:`ParamResetPolicy`:

* ``keep``: ``p`` unchanged.
* ``reinit``: ``f`` (the selected leaves are replaced by the fresh init).
* ``shrink_perturb``: ``shrink * p + perturb * f`` — shrink-and-perturb (Ash &
  Adams, 2020, "On Warm-Starting Neural Network Training"), with the perturbation
  drawn from the model's own initialiser so that every layer gets noise at its own
  init scale. Defaults: ``shrink=0.5``, ``perturb=0.1`` (see :class:`ParamResetPolicy`).

A policy may restrict which leaves are reset (``pattern``, ``param_types``,
``output_layer``; resolved into a mask by
:func:`~algoperf_reinit.reinit.param_reset_mask`).

**Model state** (batch-norm statistics and the like) is either kept or replaced by
the fresh init's model state (:class:`ModelStateResetPolicy`). A parameter policy
that changes parameters does not guess this: if the model has model state, the
policy must say what happens to it (see ``ParamResetPolicy.model_state``).

The arithmetic is in ``_param_reset`` (:func:`~algoperf_reinit.reinit.reset_params`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from algoperf_reinit import _validation

__all__ = [
    "DEFAULT_PERTURB",
    "DEFAULT_SHRINK",
    "MODEL_STATE_MODES",
    "PARAMETER_TYPE_NAMES",
    "PARAM_MODES",
    "ModelStateResetPolicy",
    "ParamResetPolicy",
    "type_name",
]

PARAM_MODES = ("keep", "reinit", "shrink_perturb")
"""Modes of :class:`ParamResetPolicy`."""

MODEL_STATE_MODES = ("keep", "reinit")
"""Modes of :class:`ModelStateResetPolicy`."""

PARAMETER_TYPE_NAMES = (
    "WEIGHT",
    "BIAS",
    "CONV_WEIGHT",
    "BATCH_NORM_SCALE",
    "BATCH_NORM_BIAS",
    "LAYER_NORM_SCALE",
    "LAYER_NORM_BIAS",
    "EMBEDDING",
    "ATTENTION_Q",
    "ATTENTION_K",
    "ATTENTION_V",
    "ATTENTION_OUT",
    "ATTENTION_QKV",
    "ATTENTION_KV",
    "ATTENTION_BIAS",
)
"""Names of AlgoPerf's ``spec.ParameterType`` members (v0.6)."""

DEFAULT_SHRINK = 0.5
"""Default ``shrink`` of mode ``shrink_perturb``."""

DEFAULT_PERTURB = 0.1
"""Default ``perturb`` of mode ``shrink_perturb``."""


@dataclasses.dataclass(frozen=True)
class ModelStateResetPolicy:
    """What a reset does to the model state (batch-norm statistics and the like).

    There is deliberately no default mode: whether stale statistics may be paired
    with reset parameters depends on the reset (see ``ParamResetPolicy.model_state``).

    Attributes:
      mode: ``"keep"`` (unchanged) or ``"reinit"`` (the fresh init's model state).

    Raises:
      ValueError: if ``mode`` is not one of :data:`MODEL_STATE_MODES`.
      TypeError: if it is not a str.

    Example:
      >>> ModelStateResetPolicy("reinit").mode
      'reinit'
    """

    mode: str

    def __post_init__(self):
        _validation.choice("ModelStateResetPolicy.mode", self.mode, MODEL_STATE_MODES)


def type_name(value: Any) -> str:
    """Name of a ``ParameterType``-like value: its ``.name``, else ``str`` (prefix dropped)."""
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        name = str(value)
    return name.rsplit(".", 1)[-1].upper()


def _coefficients(mode: str, shrink: Any, perturb: Any) -> tuple[float | None, float | None]:
    """``(shrink, perturb)`` validated: filled in for ``shrink_perturb``, else ``None``."""
    given = {"shrink": shrink, "perturb": perturb}
    if mode != "shrink_perturb":
        for name, value in given.items():
            if value is not None:
                raise _validation.value_error(
                    f"ParamResetPolicy.{name}", value, f"None with mode={mode!r}",
                    fix="it applies only to mode='shrink_perturb' ('reinit' is shrink=0, "
                        "perturb=1)",
                )
        return None, None
    defaults = {"shrink": DEFAULT_SHRINK, "perturb": DEFAULT_PERTURB}
    shrink, perturb = (
        _validation.unit_interval(f"ParamResetPolicy.{name}",
                                  defaults[name] if value is None else value)
        for name, value in given.items()
    )
    if shrink == 1.0 and perturb == 0.0:
        raise ValueError(
            "ParamResetPolicy with shrink=1.0 and perturb=0.0 leaves params unchanged; "
            "use mode='keep' to say so"
        )
    return shrink, perturb


def _pattern(pattern: Any) -> str | None:
    field = "ParamResetPolicy.pattern"
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise _validation.type_error(field, pattern, "a regular expression (a str) or None")
    if not pattern:
        raise _validation.value_error(field, pattern, "a non-empty str or None",
                                      fix="use None to select every leaf")
    try:
        re.compile(pattern)
    except re.error as err:
        raise _validation.value_error(field, pattern, "a valid regular expression",
                                      fix=str(err)) from None
    return pattern


def _param_types(raw: Any) -> frozenset[str] | None:
    field = "ParamResetPolicy.param_types"
    if raw is None:
        return None
    items = [raw] if isinstance(raw, str) or not isinstance(raw, Iterable) else list(raw)
    for item in items:
        if not isinstance(item, str) and not isinstance(getattr(item, "name", None), str):
            raise _validation.type_error(
                field, raw, "parameter-type names or ParameterType members")
    names = frozenset(type_name(v) for v in items)
    if not names:
        raise _validation.value_error(field, raw, "a non-empty set of parameter-type names",
                                      fix="use None for all leaves")
    unknown = sorted(names - set(PARAMETER_TYPE_NAMES))
    if unknown:
        near = _validation.closest(unknown[0], PARAMETER_TYPE_NAMES)
        raise _validation.value_error(
            field, raw, f"parameter-type names from {PARAMETER_TYPE_NAMES}",
            fix=f"unknown: {unknown}" + (f", did you mean {near!r}?" if near else ""),
        )
    return names


def _model_state(state: Any) -> ModelStateResetPolicy | None:
    field = "ParamResetPolicy.model_state"
    if state is None or isinstance(state, ModelStateResetPolicy):
        return state
    if not isinstance(state, str):
        raise _validation.type_error(field, state, "a str, a ModelStateResetPolicy or None")
    return ModelStateResetPolicy(_validation.choice(field, state, MODEL_STATE_MODES))


@dataclasses.dataclass(frozen=True)
class ParamResetPolicy:
    """A validated, hashable description of how parameters are reset.

    Defaults of ``shrink_perturb`` (our choice, not values from the paper):
    ``shrink=0.5`` halves every learned weight — a clear move back towards the
    small-weight regime where gradients are large and balanced, while the direction
    of what was learned is kept; ``perturb=0.1`` adds a tenth of a fresh init, small
    next to the shrunk weights but enough to break the symmetry of dead or
    duplicated units. For a leaf whose trained scale is near its init scale, the
    result has about half its old norm (``sqrt(0.5**2 + 0.1**2) ≈ 0.51``). Tune both
    per workload. The default selection is every leaf, including normalisation
    scales (init 1 → ``0.5 * scale + 0.1``); select ``param_types`` to spare them.

    ``shrink``/``perturb`` are filled in for ``shrink_perturb`` and must be ``None``
    otherwise, so ``dataclasses.replace(policy, mode="reinit")`` also needs
    ``shrink=None, perturb=None``.

    Attributes:
      mode: ``"keep"``, ``"reinit"`` or ``"shrink_perturb"`` (required).
      shrink: factor on the live params, in ``[0, 1]``; only for ``shrink_perturb``
        (default :data:`DEFAULT_SHRINK`).
      perturb: factor on the fresh init, in ``[0, 1]``; only for ``shrink_perturb``
        (default :data:`DEFAULT_PERTURB`).
      pattern: regular expression; only leaves whose key path matches it (either
        spelling, see :func:`~algoperf_reinit.reinit.param_reset_mask`) are reset.
      param_types: AlgoPerf parameter-type names (a name, or an iterable of names or
        ``ParameterType`` members), e.g. ``{"WEIGHT", "CONV_WEIGHT"}``; only leaves of
        those types in ``workload.model_params_types`` are reset. Stored as a
        frozenset of upper-case names.
      output_layer: ``True``: only the output layer (top-level keys for which
        ``workload.is_output_params`` is true); ``False``: everything but it;
        ``None``: not a criterion.
      model_state: a :class:`ModelStateResetPolicy` or its mode string. ``None``
        means "keep" when nothing changes (mode ``keep`` or an empty model state) and
        is an error in :func:`~algoperf_reinit.reinit.reset_model_state` otherwise.

    Raises:
      ValueError: for a value outside a field's allowed range or set; the message
        names the field, the value and the rule.
      TypeError: for a field of the wrong type.

    Example:
      >>> policy = ParamResetPolicy("shrink_perturb", param_types={"weight"})
      >>> policy.coefficients, sorted(policy.param_types)
      ((0.5, 0.1), ['WEIGHT'])
    """

    mode: str
    shrink: float | None = None
    perturb: float | None = None
    pattern: str | None = None
    param_types: frozenset[str] | None = None
    output_layer: bool | None = None
    model_state: ModelStateResetPolicy | str | None = None

    def __post_init__(self):
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        _validation.choice("ParamResetPolicy.mode", self.mode, PARAM_MODES)
        shrink, perturb = _coefficients(self.mode, self.shrink, self.perturb)
        put("shrink", shrink)
        put("perturb", perturb)
        put("pattern", _pattern(self.pattern))
        put("param_types", _param_types(self.param_types))
        if self.output_layer is not None and not isinstance(self.output_layer, bool):
            raise _validation.type_error(
                "ParamResetPolicy.output_layer", self.output_layer, "True, False or None")
        put("model_state", _model_state(self.model_state))

    @property
    def coefficients(self) -> tuple[float, float]:
        """``(shrink, perturb)`` of the full policy: keep (1, 0), reinit (0, 1)."""
        if self.mode == "keep":
            return 1.0, 0.0
        if self.mode == "reinit":
            return 0.0, 1.0
        return self.shrink, self.perturb
