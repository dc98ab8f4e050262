"""Reset policies for model parameters and model state at a cycle boundary.

A reset mixes the live parameters ``p`` with a *fresh* initialisation ``f`` that
the caller supplies (under AlgoPerf: ``workload.init_model_fn(rng)``):

* ``keep``: ``p`` unchanged.
* ``reinit``: ``f`` (the selected leaves are replaced by the fresh init).
* ``shrink_perturb``: ``shrink * p + perturb * f`` — shrink-and-perturb (Ash &
  Adams, 2020, "On Warm-Starting Neural Network Training"), with the perturbation
  drawn from the model's own initialiser so that every layer gets noise at its own
  init scale. Defaults: ``shrink=0.5``, ``perturb=0.1`` (see :class:`ParamResetPolicy`).

**Selection.** A policy may restrict which leaves are reset; every other leaf is
returned as the very same object, bit for bit. Selectors (all optional, combined
with AND) are a regular expression on the leaf's key path, a set of AlgoPerf
parameter-type names matched against ``workload.model_params_types``, the output
layer (``workload.is_output_params``), and a boolean mask pytree. A key path is
matched (``re.search``) against two spellings and selected if either matches:

* the ``jax.tree_util.keystr`` form, e.g. ``"['Dense_2']['kernel']"`` or
  ``"['layers'][0]['w']"``;
* the slash form, e.g. ``"Dense_2/kernel"`` or ``"layers/0/w"``.

``re.search`` matches anywhere, so ``"Dense_1"`` also matches ``"Dense_10"``: anchor
it (``r"^Dense_1/"``) when that matters. :func:`param_reset_mask` resolves the
selectors once, on the host, into a pytree of Python bools.

**Strength.** A reset takes a ``strength`` ``s`` in ``[0, 1]`` at call time, as a
traced scalar (changing it never recompiles). The mix applied is
``(shrink + (1 - s) * (1 - shrink)) * p + s * perturb * f``: ``s = 0`` returns ``p``
bit for bit, ``s = 1`` is exactly the policy (for ``reinit``: exactly ``f``), and
values in between interpolate (``reinit`` at ``s`` is ``(1 - s) * p + s * f``).
:func:`strength_from_metric` is an optional host-side rule turning the distance of
the latest validation metric from its target into a strength (the seed design's
"refactor model parameters according to current reset metric").

**Model state** (batch-norm statistics and the like) is either kept or replaced by
the fresh init's model state (:class:`ModelStateResetPolicy`). A parameter policy
that changes parameters does not guess this: if the model has model state, the
policy must say what happens to it (see ``ParamResetPolicy.model_state``).

**Arithmetic.** Each leaf keeps its dtype: the mix is computed in
``promote_types(dtype, float32)`` and cast back, so bf16 stays bf16 even when the
fresh init is float32. The tree structure (dict, FrozenDict, lists, ...) is that of
``params``. The mix is elementwise, so replicated ``NamedSharding`` inputs give
replicated outputs. Inputs are not donated: the old params stay valid.

**Under AlgoPerf.** Calling ``workload.init_model_fn`` from a submission to
re-initialise is explicitly allowed by the rules. Use a fresh key for every reset,
e.g. ``jax.random.fold_in(reset_key, cycle_index)``: re-using the run's initial key
would reproduce the initial weights, so ``shrink_perturb`` would pull the model back
towards its starting point instead of adding new noise. ``init_model_fn`` returns
replicated arrays on most workloads and uncommitted single-device arrays on a few
(mnist, wmt, imagenet_resnet); both work, because jit places uncommitted inputs
next to the replicated params. Its run time is part of the submission time.

Example:
  >>> import jax, jax.numpy as jnp
  >>> params = {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
  >>> fresh = {"Dense_0": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.zeros((2,))}}
  >>> policy = ParamResetPolicy("shrink_perturb", pattern="kernel")
  >>> out = reset_params(policy, params, fresh)
  >>> out["Dense_0"]["kernel"][0, 0].item(), out["Dense_0"]["bias"][0].item()
  (0.699999988079071, 1.0)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PARAM_MODES = ("keep", "reinit", "shrink_perturb")
"""Modes of :class:`ParamResetPolicy`."""

MODEL_STATE_MODES = ("keep", "reinit")
"""Modes of :class:`ModelStateResetPolicy`."""

METRIC_MODES = ("min", "max")
"""Directions for :func:`strength_from_metric`: lower is better, higher is better."""

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

_MODEL_STATE_UNSET = (
    "ParamResetPolicy.model_state is None, but mode={mode!r} changes parameters and the "
    "model has model state ({n} leaves, e.g. {examples}). Say what happens to it: "
    "model_state='reinit' takes the fresh init's state (right after a full reinit: fresh "
    "weights with stale batch-norm statistics evaluate badly until the running averages "
    "catch up), model_state='keep' keeps it (right for partial resets, e.g. only the "
    "output layer, where the statistics of the body stay valid)."
)


# ----------------------------------------------------------------------------- config


def _unit_number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{field} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{field} must be in [0, 1], got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ModelStateResetPolicy:
    """What a reset does to the model state (batch-norm statistics and the like).

    There is deliberately no default mode: whether stale statistics may be paired
    with reset parameters depends on the reset (see ``ParamResetPolicy.model_state``).

    Attributes:
      mode: ``"keep"`` (unchanged) or ``"reinit"`` (the fresh init's model state).

    Raises:
      ValueError: if ``mode`` is not one of :data:`MODEL_STATE_MODES`.

    Example:
      >>> ModelStateResetPolicy("reinit").mode
      'reinit'
    """

    mode: str

    def __post_init__(self):
        if self.mode not in MODEL_STATE_MODES:
            raise ValueError(
                f"ModelStateResetPolicy.mode must be one of {MODEL_STATE_MODES}, got {self.mode!r}"
            )


def _type_name(value: Any) -> str:
    """Name of a ``ParameterType``-like value: its ``.name``, else ``str`` (prefix dropped)."""
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        name = str(value)
    return name.rsplit(".", 1)[-1].upper()


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
        spelling, see the module docstring) are reset.
      param_types: AlgoPerf parameter-type names (a name, or an iterable of names or
        ``ParameterType`` members), e.g. ``{"WEIGHT", "CONV_WEIGHT"}``; only leaves of
        those types in ``workload.model_params_types`` are reset. Stored as a
        frozenset of upper-case names.
      output_layer: ``True``: only the output layer (top-level keys for which
        ``workload.is_output_params`` is true); ``False``: everything but it;
        ``None``: not a criterion.
      model_state: a :class:`ModelStateResetPolicy` or its mode string. ``None``
        means "keep" when nothing changes (mode ``keep`` or an empty model state) and
        is an error in :func:`reset_model_state` otherwise.

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
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if self.mode not in PARAM_MODES:
            raise ValueError(
                f"ParamResetPolicy.mode must be one of {PARAM_MODES}, got {self.mode!r}"
            )

        if self.mode == "shrink_perturb":
            for name, default in (("shrink", DEFAULT_SHRINK), ("perturb", DEFAULT_PERTURB)):
                value = getattr(self, name)
                value = default if value is None else value
                set_(name, _unit_number(f"ParamResetPolicy.{name}", value))
            if self.shrink == 1.0 and self.perturb == 0.0:
                raise ValueError(
                    "ParamResetPolicy with shrink=1.0 and perturb=0.0 leaves params unchanged; "
                    "use mode='keep' to say so"
                )
        else:
            for name in ("shrink", "perturb"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"ParamResetPolicy.{name} applies only to mode='shrink_perturb', got "
                        f"{name}={getattr(self, name)!r} with mode={self.mode!r}; drop it "
                        "('reinit' is shrink=0, perturb=1)"
                    )

        if self.pattern is not None:
            if not isinstance(self.pattern, str) or not self.pattern:
                raise TypeError(
                    f"ParamResetPolicy.pattern must be a non-empty str or None, got {self.pattern!r}"
                )
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(
                    f"ParamResetPolicy.pattern must be a valid regular expression, got "
                    f"{self.pattern!r} ({err})"
                ) from None

        if self.param_types is not None:
            raw = self.param_types
            items = [raw] if isinstance(raw, str) or not isinstance(raw, Iterable) else list(raw)
            names = frozenset(_type_name(v) for v in items)
            if not names:
                raise ValueError("ParamResetPolicy.param_types must not be empty; use None for all")
            unknown = sorted(names - set(PARAMETER_TYPE_NAMES))
            if unknown:
                raise ValueError(
                    f"ParamResetPolicy.param_types has unknown names {unknown} (from {raw!r}); "
                    f"valid names are {PARAMETER_TYPE_NAMES}"
                )
            set_("param_types", names)

        if self.output_layer is not None and not isinstance(self.output_layer, bool):
            raise TypeError(
                f"ParamResetPolicy.output_layer must be True, False or None, got "
                f"{self.output_layer!r}"
            )

        state = self.model_state
        if isinstance(state, str):
            if state not in MODEL_STATE_MODES:
                raise ValueError(
                    f"ParamResetPolicy.model_state must be one of {MODEL_STATE_MODES}, a "
                    f"ModelStateResetPolicy or None, got {state!r}"
                )
            set_("model_state", ModelStateResetPolicy(state))
        elif state is not None and not isinstance(state, ModelStateResetPolicy):
            raise TypeError(
                f"ParamResetPolicy.model_state must be a str, a ModelStateResetPolicy or None, "
                f"got {state!r}"
            )

    @property
    def coefficients(self) -> tuple[float, float]:
        """``(shrink, perturb)`` of the full policy: keep (1, 0), reinit (0, 1)."""
        if self.mode == "keep":
            return 1.0, 0.0
        if self.mode == "reinit":
            return 0.0, 1.0
        return self.shrink, self.perturb


# ----------------------------------------------------------------------------- paths


def _key_names(path: tuple) -> tuple[str, ...]:
    return tuple(jax.tree_util.keystr((key,), simple=True) for key in path)


def _flatten(tree: Any) -> tuple[list[tuple[str, ...]], list[tuple], list[Any], Any]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [path for path, _ in flat]
    return [_key_names(p) for p in paths], paths, [leaf for _, leaf in flat], treedef


def _check_same_paths(what: str, expected: list, got: list) -> None:
    if expected == got:
        return
    want, have = set(expected), set(got)
    missing = ["/".join(p) for p in expected if p not in have][:5]
    extra = ["/".join(p) for p in got if p not in want][:5]
    raise ValueError(
        f"{what} must have the tree structure of params ({len(expected)} leaves), got "
        f"{len(got)} leaves; missing: {missing}, unexpected: {extra}"
    )


def _check_shapes(what: str, names: list, ref: list, other: list) -> None:
    for name, a, b in zip(names, ref, other, strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"{what} leaf '{'/'.join(name)}' has shape {jnp.shape(b)}, but the live leaf "
                f"has shape {jnp.shape(a)}; both must come from the same model"
            )


def _mask_flags(mask: Any, params: Any, names: list) -> list[bool]:
    if callable(mask) and not isinstance(mask, Mapping):
        mask = mask(params)
    mask_names, _, leaves, _ = _flatten(mask)
    _check_same_paths("mask", names, mask_names)
    flags = []
    for name, leaf in zip(mask_names, leaves, strict=True):
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(
                f"mask leaf '{'/'.join(name)}' is traced; a mask must hold host booleans, "
                "resolved outside jit (see param_reset_mask)"
            )
        arr = np.asarray(leaf)
        if arr.shape != () or arr.dtype != np.bool_:
            raise TypeError(f"mask leaf '{'/'.join(name)}' must be a bool, got {leaf!r}")
        flags.append(bool(arr))
    return flags


def param_reset_mask(
    policy: ParamResetPolicy,
    params: Any,
    *,
    params_types: Any = None,
    is_output_params: Callable[[str], bool] | None = None,
    mask: Any = None,
) -> Any:
    """Resolves a policy's selectors into a boolean mask, on the host, once.

    The result is the AND of ``mask`` (if given) and each selector the policy sets
    (``pattern``, ``param_types``, ``output_layer``). Call it once when building
    (e.g. in ``init_optimizer_state``) and pass the result to :func:`reset_params`.

    Args:
      policy: the policy whose selectors to apply.
      params: the parameter pytree (arrays or tracers; only its structure is read).
      params_types: a pytree like ``params`` whose leaves are parameter types
        (``workload.model_params_types``: enum members with a ``.name``, or strings);
        required when ``policy.param_types`` is set.
      is_output_params: ``workload.is_output_params``, called with each top-level
        key of ``params``; required when ``policy.output_layer`` is set.
      mask: an optional pytree of bools like ``params`` (or a callable
        ``params -> mask``) further restricting the selection.

    Returns:
      A pytree with the structure of ``params`` and Python ``bool`` leaves.

    Raises:
      TypeError: if ``policy`` is not a :class:`ParamResetPolicy`, or a mask leaf is
        not a host bool.
      ValueError: if a needed workload argument is missing, a tree does not match
        ``params``, a selector matches no leaf (available paths or types are listed),
        or the selectors together match no leaf.

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 2))}, "Dense_1": {"kernel": jnp.ones(2)}}
      >>> policy = ParamResetPolicy("reinit", output_layer=True)
      >>> param_reset_mask(policy, params, is_output_params=lambda key: key == "Dense_1")
      {'Dense_0': {'kernel': False}, 'Dense_1': {'kernel': True}}
    """
    if not isinstance(policy, ParamResetPolicy):
        raise TypeError(f"policy must be a ParamResetPolicy, got {type(policy).__name__}")
    names, paths, _, treedef = _flatten(params)
    flags = [True] * len(names)
    counts = {}

    def restrict(selector: str, selected: list[bool], available: str) -> None:
        counts[selector] = sum(selected)
        if not any(selected):
            raise ValueError(f"ParamResetPolicy.{selector} matches no leaf of params; {available}")
        flags[:] = [a and b for a, b in zip(flags, selected, strict=True)]

    if mask is not None:
        selected = _mask_flags(mask, params, names)
        counts["mask"] = sum(selected)
        flags = [a and b for a, b in zip(flags, selected, strict=True)]

    if policy.pattern is not None:
        regex = re.compile(policy.pattern)
        spellings = [
            (jax.tree_util.keystr(p), "/".join(n)) for p, n in zip(paths, names, strict=True)
        ]
        selected = [bool(regex.search(a) or regex.search(b)) for a, b in spellings]
        shown = ", ".join(f"{a!r} or {b!r}" for a, b in spellings[:6])
        restrict("pattern", selected, f"pattern={policy.pattern!r}; leaves are e.g. {shown}")

    if policy.param_types is not None:
        if params_types is None:
            raise ValueError(
                f"ParamResetPolicy.param_types={sorted(policy.param_types)} needs "
                "params_types=workload.model_params_types"
            )
        type_names, _, type_leaves, _ = _flatten(params_types)
        _check_same_paths("params_types", names, type_names)
        kinds = [_type_name(v) for v in type_leaves]
        selected = [kind in policy.param_types for kind in kinds]
        restrict(
            "param_types",
            selected,
            f"param_types={sorted(policy.param_types)}; params have types {sorted(set(kinds))}",
        )

    if policy.output_layer is not None:
        if is_output_params is None or not callable(is_output_params):
            raise ValueError(
                f"ParamResetPolicy.output_layer={policy.output_layer} needs "
                f"is_output_params=workload.is_output_params, got {is_output_params!r}"
            )
        tops = sorted({n[0] for n in names if n})
        is_output = {top: bool(is_output_params(top)) for top in tops}
        selected = [bool(n) and is_output[n[0]] == policy.output_layer for n in names]
        restrict(
            "output_layer",
            selected,
            f"output_layer={policy.output_layer}; is_output_params per top-level key: {is_output}",
        )

    if names and not any(flags):
        raise ValueError(
            f"the selectors of the policy together match no leaf of params (leaves matched by "
            f"each: {counts}); loosen one of them"
        )
    return jax.tree.unflatten(treedef, flags)


# ----------------------------------------------------------------------------- resets


def _check_strength(strength: Any) -> jax.Array:
    if isinstance(strength, bool):
        raise TypeError(f"strength must be a number or a scalar array, got {strength!r}")
    if isinstance(strength, int | float | np.integer | np.floating):
        value = float(strength)
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"strength must be in [0, 1], got {strength!r} (0 keeps params, 1 applies the "
                "full policy; a NaN metric should give 0, see strength_from_metric)"
            )
    elif not hasattr(strength, "shape") or not hasattr(strength, "dtype"):
        raise TypeError(
            f"strength must be a number or a scalar array, got {type(strength).__name__}"
        )
    elif jnp.shape(strength) != ():
        raise ValueError(f"strength must be a scalar, got shape {jnp.shape(strength)}")
    return jnp.asarray(strength, dtype=jnp.float32)


def _sanitize(strength: jax.Array) -> jax.Array:
    """Traced strength clipped to [0, 1]; NaN means 0 (keep)."""
    return jnp.where(jnp.isnan(strength), 0.0, jnp.clip(strength, 0.0, 1.0))


@functools.partial(jax.jit, static_argnames=("shrink", "perturb", "exact_fresh"))
def _mix_leaves(
    params: list,
    fresh: list,
    strength: jax.Array,
    *,
    shrink: float,
    perturb: float,
    exact_fresh: bool,
) -> list:
    s = _sanitize(strength)
    keep_weight = shrink + (1.0 - s) * (1.0 - shrink)  # == shrink exactly when s == 1
    fresh_weight = s * perturb
    out = []
    for p, f in zip(params, fresh, strict=True):
        compute = jnp.promote_types(p.dtype, jnp.float32)
        mixed = keep_weight.astype(compute) * p.astype(compute)
        mixed = (mixed + fresh_weight.astype(compute) * f.astype(compute)).astype(p.dtype)
        if exact_fresh:  # reinit at s == 1 is f itself, even for -0.0 or a non-finite p
            mixed = jnp.where(s == 1.0, f.astype(p.dtype), mixed)
        out.append(jnp.where(s == 0.0, p, mixed))
    return out


@jax.jit
def _take_fresh_leaves(old: list, fresh: list, strength: jax.Array) -> list:
    s = _sanitize(strength)
    return [jnp.where(s > 0.0, f.astype(o.dtype), o) for o, f in zip(old, fresh, strict=True)]


def reset_params(
    policy: ParamResetPolicy,
    params: Any,
    fresh_params: Any,
    strength: jax.typing.ArrayLike = 1.0,
    mask: Any = None,
) -> Any:
    """Resets the selected leaves of ``params`` towards ``fresh_params``.

    Selected leaf ``p`` with fresh leaf ``f`` becomes
    ``(shrink + (1 - s) * (1 - shrink)) * p + s * perturb * f`` (computed in at least
    float32, cast back to ``p``'s dtype), with ``(shrink, perturb)`` from
    ``policy.coefficients`` and ``s`` the clipped ``strength``; ``s = 0`` returns
    ``p`` bit for bit and ``s = 1`` is exactly the policy. Unselected leaves are
    returned untouched. The arithmetic runs in one jitted function, compiled once
    per set of leaf shapes/dtypes and policy coefficients: new strengths or new fresh
    params do not recompile. It can also be called inside the caller's ``jax.jit``.

    Args:
      policy: the reset policy. Mode ``keep`` returns ``params`` itself.
      params: the live parameter pytree.
      fresh_params: a fresh initialisation with the same structure and shapes (e.g.
        the params from ``workload.init_model_fn(jax.random.fold_in(key, cycle))``);
        its dtypes may differ (they are cast to the live dtypes).
      strength: scalar in ``[0, 1]``, traced. A Python/NumPy number outside
        ``[0, 1]`` is an error; an array is clipped to ``[0, 1]`` and NaN means 0.
      mask: the final selection, normally from :func:`param_reset_mask` (a pytree of
        bools like ``params`` or a callable returning one). When given, the policy's
        selectors are not applied again. When ``None`` it is resolved here, which
        works only for the ``pattern`` selector (the others need workload data).

    Returns:
      A pytree with the structure of ``params`` and the dtype of each of its leaves.

    Raises:
      TypeError: for a non-policy, a bad ``strength`` or mask leaf, or a selected
        leaf that is not floating point.
      ValueError: for ``strength`` outside ``[0, 1]`` or not scalar, ``fresh_params``
        or ``mask`` not matching ``params``, a shape mismatch (the path is named), or
        a selector that cannot be resolved here.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> params, fresh = {"w": jnp.ones(3, jnp.bfloat16)}, {"w": jnp.zeros(3)}
      >>> step = jax.jit(lambda p, f, s: reset_params(ParamResetPolicy("reinit"), p, f, s))
      >>> out = step(params, fresh, 0.25)
      >>> out["w"].dtype, out["w"][0].item()
      (dtype(bfloat16), 0.75)
    """
    if not isinstance(policy, ParamResetPolicy):
        raise TypeError(f"policy must be a ParamResetPolicy, got {type(policy).__name__}")
    strength = _check_strength(strength)
    if policy.mode == "keep":
        return params
    names, _, leaves, treedef = _flatten(params)
    fresh_names, _, fresh_leaves, _ = _flatten(fresh_params)
    _check_same_paths("fresh_params", names, fresh_names)
    _check_shapes("fresh_params", names, leaves, fresh_leaves)
    if mask is None:
        if policy.param_types is not None or policy.output_layer is not None:
            raise ValueError(
                "ParamResetPolicy.param_types / output_layer need workload data: build the mask "
                "once with param_reset_mask(policy, params, params_types=..., "
                "is_output_params=...) and pass it as mask="
            )
        flags = jax.tree.leaves(param_reset_mask(policy, params))
    else:
        flags = _mask_flags(mask, params, names)
    selected = [i for i, flag in enumerate(flags) if flag]
    for i in selected:
        if not jnp.issubdtype(jnp.result_type(leaves[i]), jnp.floating):
            raise TypeError(
                f"selected leaf '{'/'.join(names[i])}' has dtype {jnp.result_type(leaves[i])}; "
                "resets apply to floating-point leaves only, exclude it from the selection"
            )
    if not selected:
        return params
    shrink, perturb = policy.coefficients
    mixed = _mix_leaves(
        [leaves[i] for i in selected],
        [fresh_leaves[i] for i in selected],
        strength,
        shrink=shrink,
        perturb=perturb,
        exact_fresh=policy.mode == "reinit",
    )
    out = list(leaves)
    for i, leaf in zip(selected, mixed, strict=True):
        out[i] = leaf
    return jax.tree.unflatten(treedef, out)


def reset_model_state(
    policy: ParamResetPolicy | ModelStateResetPolicy,
    model_state: Any,
    fresh_model_state: Any,
    strength: jax.typing.ArrayLike = 1.0,
) -> Any:
    """Keeps the model state or takes the fresh init's model state.

    With mode ``reinit`` every leaf of ``model_state`` is replaced by the fresh leaf
    (cast to the live dtype) when the clipped ``strength`` is > 0, so a strength of
    0 leaves parameters *and* model state untouched. The choice is a traced select
    in a jitted function (no recompilation for new strengths).

    Args:
      policy: a :class:`ModelStateResetPolicy`, or a :class:`ParamResetPolicy`
        whose ``model_state`` field is used. If that field is ``None``, the state is
        kept when the policy is ``keep`` or the state has no leaves; otherwise this
        raises, because silently pairing reset params with stale statistics (or the
        reverse) is a choice the user must make.
      model_state: the live model state (e.g. ``{"batch_stats": ...}``, or an empty
        dict / ``None`` for models without one).
      fresh_model_state: the model state from the same fresh init as the params.
      strength: as in :func:`reset_params`.

    Returns:
      The new model state, with the structure and dtypes of ``model_state``.

    Raises:
      TypeError: for a wrong policy type or a bad ``strength``.
      ValueError: if a :class:`ParamResetPolicy` changes params, leaves
        ``model_state`` unset and the model state is not empty; if the fresh state's
        structure or shapes do not match; or for a bad ``strength`` value.

    Example:
      >>> import jax.numpy as jnp
      >>> state = {"batch_stats": {"mean": jnp.ones(2)}}
      >>> fresh = {"batch_stats": {"mean": jnp.zeros(2)}}
      >>> policy = ParamResetPolicy("reinit", model_state="reinit")
      >>> reset_model_state(policy, state, fresh)["batch_stats"]["mean"].tolist()
      [0.0, 0.0]
    """
    names, _, leaves, treedef = _flatten(model_state)
    if isinstance(policy, ParamResetPolicy):
        state_policy = policy.model_state
        if state_policy is None:
            if policy.mode != "keep" and leaves:
                examples = ["/".join(n) for n in names[:3]]
                raise ValueError(
                    _MODEL_STATE_UNSET.format(mode=policy.mode, n=len(leaves), examples=examples)
                )
            state_policy = ModelStateResetPolicy("keep")
    elif isinstance(policy, ModelStateResetPolicy):
        state_policy = policy
    else:
        raise TypeError(
            f"policy must be a ModelStateResetPolicy or a ParamResetPolicy, got "
            f"{type(policy).__name__}"
        )
    strength = _check_strength(strength)
    if state_policy.mode == "keep" or not leaves:
        return model_state
    fresh_names, _, fresh_leaves, _ = _flatten(fresh_model_state)
    _check_same_paths("fresh_model_state", names, fresh_names)
    _check_shapes("fresh_model_state", names, leaves, fresh_leaves)
    return jax.tree.unflatten(treedef, _take_fresh_leaves(leaves, fresh_leaves, strength))


# ----------------------------------------------------------------------------- metric


def _finite(field: str, value: Any) -> float:
    if isinstance(value, bool) or np.ndim(value) != 0:
        raise TypeError(f"{field} must be a scalar number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{field} must be a scalar number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return value


def strength_from_metric(value: Any, target: float, mode: str, *, full_at: float = 1.0) -> float:
    """Reset strength from how far a validation metric is from its target (host side).

    ``gap = (value - target) / |target|`` when lower is better (``mode="min"``: loss,
    error rate, WER), ``(target - value) / |target|`` when higher is better
    (``mode="max"``: accuracy, BLEU, SSIM, mAP); ``|target|`` is replaced by 1 when
    the target is 0. The strength is ``clip(gap / full_at, 0, 1)``: 0 once the
    target is met, 1 when the metric is ``full_at`` (relative) or further from it.
    A NaN metric gives 0 — an unusable measurement triggers no reset (handle
    divergence elsewhere); an infinitely bad one gives 1.

    With the default ``full_at=1``: a validation loss twice its target, or an
    accuracy of 0, resets fully; an accuracy of 0.70 against 0.77 gives 0.09.
    Relative gaps differ a lot between metrics (criteo's loss is within 5 % of its
    target early on), so tune ``full_at`` per metric, e.g. as a hyperparameter.

    Args:
      value: the latest validation metric (e.g. ``eval_results[-1][1]
        ["validation/loss"]``; never a ``test/*`` metric). Python/NumPy/0-d array.
      target: its target, e.g. ``workload.validation_target_value``.
      mode: ``"min"`` or ``"max"``.
      full_at: relative gap at which the strength reaches 1; > 0.

    Returns:
      A Python float in ``[0, 1]`` to pass as ``strength`` to :func:`reset_params`.

    Raises:
      ValueError: for a ``mode`` not in :data:`METRIC_MODES`, a non-finite ``target``
        or a ``full_at`` that is not a finite number > 0.
      TypeError: for a non-numeric ``value``, ``target`` or ``full_at``.

    Example:
      >>> strength_from_metric(0.75, target=0.5, mode="min")  # loss 50 % above target
      0.5
      >>> strength_from_metric(0.375, target=0.75, mode="max", full_at=0.25)
      1.0
      >>> strength_from_metric(float("nan"), target=0.5, mode="min")
      0.0
    """
    if mode not in METRIC_MODES:
        raise ValueError(f"mode must be one of {METRIC_MODES}, got {mode!r}")
    target = _finite("target", target)
    full_at = _finite("full_at", full_at)
    if full_at <= 0:
        raise ValueError(f"full_at must be > 0, got {full_at!r}")
    if isinstance(value, bool) or np.ndim(value) != 0:
        raise TypeError(f"value must be a scalar number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value must be a scalar number, got {value!r}") from None
    if math.isnan(value):
        return 0.0
    gap = value - target if mode == "min" else target - value
    gap /= abs(target) if target != 0 else 1.0
    return float(min(1.0, max(0.0, gap / full_at)))
