"""Reset arithmetic: the selected parameters mixed with a fresh init, the model state.

A reset mixes the live parameters ``p`` with a fresh initialisation ``f`` by a
:class:`~algoperf_reinit.reinit.ParamResetPolicy` (``keep``, ``reinit``,
``shrink_perturb``; see ``_param_policy``), on the leaves its selectors pick (see
``_param_select``).

**Strength.** A reset takes a ``strength`` ``s`` in ``[0, 1]`` at call time, as a
traced scalar (changing it never recompiles). The mix applied is
``(shrink + (1 - s) * (1 - shrink)) * p + s * perturb * f``: ``s = 0`` returns ``p``
bit for bit, ``s = 1`` is exactly the policy (for ``reinit``: exactly ``f``), and
values in between interpolate (``reinit`` at ``s`` is ``(1 - s) * p + s * f``).
:func:`~algoperf_reinit.reinit.strength_from_metric` is an optional host-side rule
turning the distance of the latest validation metric from its target into a
strength (the seed design's "refactor model parameters according to current reset
metric").

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

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.reinit import _tree
from algoperf_reinit.reinit._param_policy import ModelStateResetPolicy, ParamResetPolicy
from algoperf_reinit.reinit._param_select import mask_flags, selected_flags

__all__ = ["reset_model_state", "reset_params"]

_MODEL_STATE_UNSET = (
    "ParamResetPolicy.model_state is None, but mode={mode!r} changes parameters and the "
    "model has model state ({n} leaves, e.g. {examples}). Say what happens to it: "
    "model_state='reinit' takes the fresh init's state (right after a full reinit: fresh "
    "weights with stale batch-norm statistics evaluate badly until the running averages "
    "catch up), model_state='keep' keeps it (right for partial resets, e.g. only the "
    "output layer, where the statistics of the body stay valid)."
)
_STRENGTH_RULE = "a number or a scalar array"
_STRENGTH_FIX = ("0 keeps params, 1 applies the full policy; a NaN metric should give 0, see "
                 "strength_from_metric")


def _check_strength(strength: Any) -> jax.Array:
    """A Python/NumPy number in [0, 1] or a scalar array (clipped later), as float32."""
    if not hasattr(strength, "shape") or isinstance(strength, np.generic):
        try:
            _validation.unit_interval("strength", strength, fix=_STRENGTH_FIX)
        except TypeError:
            raise _validation.type_error("strength", strength, _STRENGTH_RULE) from None
    elif not hasattr(strength, "dtype"):
        raise _validation.type_error("strength", strength, _STRENGTH_RULE)
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
      mask: the final selection, normally from
        :func:`~algoperf_reinit.reinit.param_reset_mask` (a pytree of
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
        raise _validation.type_error("policy", policy, "a ParamResetPolicy")
    strength = _check_strength(strength)
    if policy.mode == "keep":
        return params
    live, fresh = _tree.flatten_named(params), _tree.flatten_named(fresh_params)
    _tree.check_same_paths("fresh_params", live.names, fresh.names)
    _tree.check_same_shapes("fresh_params", live.names, live.leaves, fresh.leaves)
    selected = _selected_leaves(policy, params, live, mask)
    if not selected:
        return params
    shrink, perturb = policy.coefficients
    mixed = _mix_leaves(
        [live.leaves[i] for i in selected],
        [fresh.leaves[i] for i in selected],
        strength,
        shrink=shrink,
        perturb=perturb,
        exact_fresh=policy.mode == "reinit",
    )
    out = list(live.leaves)
    for i, leaf in zip(selected, mixed, strict=True):
        out[i] = leaf
    return jax.tree.unflatten(live.treedef, out)


def _selected_leaves(policy: ParamResetPolicy, params: Any, live: _tree.NamedLeaves,
                     mask: Any) -> list[int]:
    """Indices of the leaves to reset: ``mask`` if given, else the policy's ``pattern``."""
    if mask is None:
        if policy.param_types is not None or policy.output_layer is not None:
            raise ValueError(
                "ParamResetPolicy.param_types / output_layer need workload data: build the mask "
                "once with param_reset_mask(policy, params, params_types=..., "
                "is_output_params=...) and pass it as mask="
            )
        flags = selected_flags(policy, params, live)
    else:
        flags = mask_flags(mask, params, live.names)
    selected = [i for i, flag in enumerate(flags) if flag]
    for i in selected:
        dtype = jnp.result_type(live.leaves[i])
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"selected leaf '{_tree.slash(live.names[i])}' has dtype {dtype}; resets apply "
                "to floating-point leaves only, exclude it from the selection"
            )
    return selected


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
    live = _tree.flatten_named(model_state)
    state_policy = _model_state_policy(policy, live)
    strength = _check_strength(strength)
    if state_policy.mode == "keep" or not live.leaves:
        return model_state
    fresh = _tree.flatten_named(fresh_model_state)
    _tree.check_same_paths("fresh_model_state", live.names, fresh.names)
    _tree.check_same_shapes("fresh_model_state", live.names, live.leaves, fresh.leaves)
    return jax.tree.unflatten(live.treedef, _take_fresh_leaves(live.leaves, fresh.leaves,
                                                               strength))


def _model_state_policy(policy: Any, live: _tree.NamedLeaves) -> ModelStateResetPolicy:
    """The model-state policy a reset applies (see :func:`reset_model_state`)."""
    if isinstance(policy, ModelStateResetPolicy):
        return policy
    if not isinstance(policy, ParamResetPolicy):
        raise _validation.type_error("policy", policy,
                                     "a ModelStateResetPolicy or a ParamResetPolicy")
    if policy.model_state is not None:
        return policy.model_state
    if policy.mode != "keep" and live.leaves:
        examples = [_tree.slash(n) for n in live.names[:3]]
        raise ValueError(
            _MODEL_STATE_UNSET.format(mode=policy.mode, n=len(live.leaves), examples=examples))
    return ModelStateResetPolicy("keep")
