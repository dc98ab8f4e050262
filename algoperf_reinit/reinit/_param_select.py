"""Which leaves of the parameters a reset touches: a policy's selectors as a mask.

A :class:`~algoperf_reinit.reinit.ParamResetPolicy` may restrict which leaves are
reset; every other leaf is returned as the very same object, bit for bit.
Selectors (all optional, combined with AND) are a regular expression on the leaf's
key path, a set of AlgoPerf parameter-type names matched against
``workload.model_params_types``, the output layer (``workload.is_output_params``),
and a boolean mask pytree. A key path is matched (``re.search``) against its two
spellings (see ``_tree``) and selected if either matches:

* the ``jax.tree_util.keystr`` form, e.g. ``"['Dense_2']['kernel']"`` or
  ``"['layers'][0]['w']"``;
* the slash form, e.g. ``"Dense_2/kernel"`` or ``"layers/0/w"``.

``re.search`` matches anywhere, so ``"Dense_1"`` also matches ``"Dense_10"``: anchor
it (``r"^Dense_1/"``) when that matters. :func:`param_reset_mask` resolves the
selectors on the host into a pytree of Python bools. It reads only the structure of
the params, which does not change during a run: resolve it once when the run is
built and pass it to every reset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.reinit import _tree
from algoperf_reinit.reinit._param_policy import ParamResetPolicy, type_name

__all__ = ["mask_flags", "param_reset_mask", "selected_flags"]


def mask_flags(mask: Any, params: Any, names: list[_tree.Names]) -> list[bool]:
    """The leaves of a user's mask (a pytree of host bools, or ``params -> mask``)."""
    if callable(mask) and not isinstance(mask, Mapping):
        mask = mask(params)
    tree = _tree.flatten_named(mask)
    _tree.check_same_paths("mask", names, tree.names)
    flags = []
    for name, leaf in zip(tree.names, tree.leaves, strict=True):
        field = f"mask leaf '{_tree.slash(name)}'"
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(
                f"{field} is traced; a mask must hold host booleans, resolved outside jit "
                "(see param_reset_mask)"
            )
        arr = np.asarray(leaf)
        if arr.shape != () or arr.dtype != np.bool_:
            raise _validation.type_error(field, leaf, "a bool")
        flags.append(bool(arr))
    return flags


def _by_pattern(policy: ParamResetPolicy, tree: _tree.NamedLeaves) -> tuple[list[bool], str]:
    regex = re.compile(policy.pattern)
    spellings = [(jax.tree_util.keystr(p), _tree.slash(n))
                 for p, n in zip(tree.paths, tree.names, strict=True)]
    selected = [bool(regex.search(a) or regex.search(b)) for a, b in spellings]
    shown = ", ".join(f"{a!r} or {b!r}" for a, b in spellings[:6])
    return selected, f"pattern={policy.pattern!r}; leaves are e.g. {shown}"


def _by_type(policy: ParamResetPolicy, tree: _tree.NamedLeaves,
             params_types: Any) -> tuple[list[bool], str]:
    if params_types is None:
        raise ValueError(
            f"ParamResetPolicy.param_types={sorted(policy.param_types)} needs "
            "params_types=workload.model_params_types"
        )
    types = _tree.flatten_named(params_types)
    _tree.check_same_paths("params_types", tree.names, types.names)
    kinds = [type_name(v) for v in types.leaves]
    selected = [kind in policy.param_types for kind in kinds]
    return selected, (f"param_types={sorted(policy.param_types)}; params have types "
                      f"{sorted(set(kinds))}")


def _by_output_layer(policy: ParamResetPolicy, tree: _tree.NamedLeaves,
                     is_output_params: Any) -> tuple[list[bool], str]:
    if is_output_params is None or not callable(is_output_params):
        raise ValueError(
            f"ParamResetPolicy.output_layer={policy.output_layer} needs "
            f"is_output_params=workload.is_output_params, got {is_output_params!r}"
        )
    tops = sorted({n[0] for n in tree.names if n})
    is_output = {top: bool(is_output_params(top)) for top in tops}
    selected = [bool(n) and is_output[n[0]] == policy.output_layer for n in tree.names]
    return selected, (f"output_layer={policy.output_layer}; is_output_params per top-level "
                      f"key: {is_output}")


def selected_flags(
    policy: ParamResetPolicy,
    params: Any,
    tree: _tree.NamedLeaves,
    *,
    params_types: Any = None,
    is_output_params: Callable[[str], bool] | None = None,
    mask: Any = None,
) -> list[bool]:
    """:func:`param_reset_mask` as a list of flags in flattening order of ``tree``."""
    flags = [True] * len(tree.names)
    counts = {}
    if mask is not None:
        selected = mask_flags(mask, params, tree.names)
        counts["mask"] = sum(selected)
        flags = [a and b for a, b in zip(flags, selected, strict=True)]
    selectors = (
        ("pattern", policy.pattern is not None, lambda: _by_pattern(policy, tree)),
        ("param_types", policy.param_types is not None,
         lambda: _by_type(policy, tree, params_types)),
        ("output_layer", policy.output_layer is not None,
         lambda: _by_output_layer(policy, tree, is_output_params)),
    )
    for selector, used, select in selectors:
        if not used:
            continue
        selected, available = select()
        counts[selector] = sum(selected)
        if not any(selected):
            raise ValueError(f"ParamResetPolicy.{selector} matches no leaf of params; {available}")
        flags = [a and b for a, b in zip(flags, selected, strict=True)]
    if tree.names and not any(flags):
        raise ValueError(
            f"the selectors of the policy together match no leaf of params (leaves matched by "
            f"each: {counts}); loosen one of them"
        )
    return flags


def param_reset_mask(
    policy: ParamResetPolicy,
    params: Any,
    *,
    params_types: Any = None,
    is_output_params: Callable[[str], bool] | None = None,
    mask: Any = None,
    workload: Any = None,
) -> Any:
    """Resolves a policy's selectors into a boolean mask, on the host.

    The result is the AND of ``mask`` (if given) and each selector the policy sets
    (``pattern``, ``param_types``, ``output_layer``). It depends only on the
    structure of ``params``: call it once when building (e.g. in
    ``init_optimizer_state``) and pass the result to every
    :func:`~algoperf_reinit.reinit.reset_params` (or as ``mask=`` to
    :func:`~algoperf_reinit.reinit.model_reinit_schedule`).

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
      workload: an AlgoPerf workload; when given, ``params_types`` and
        ``is_output_params`` default to its ``model_params_types`` and
        ``is_output_params`` (each read only when the policy needs it).

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
        raise _validation.type_error("policy", policy, "a ParamResetPolicy")
    if workload is not None:
        if policy.param_types is not None and params_types is None:
            params_types = getattr(workload, "model_params_types", None)
        if policy.output_layer is not None and is_output_params is None:
            is_output_params = getattr(workload, "is_output_params", None)
    tree = _tree.flatten_named(params)
    flags = selected_flags(policy, params, tree, params_types=params_types,
                           is_output_params=is_output_params, mask=mask)
    return jax.tree.unflatten(tree.treedef, flags)
