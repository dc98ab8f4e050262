"""Key paths of pytrees: the params-like leaves and step counts of any optax state,
and the named leaves of a params tree.

**Named leaves.** :func:`flatten_named` flattens a tree (params, model state, a
mask, ``workload.model_params_types``) with each leaf's key path and the path's
entries as plain strings (``('Dense_0', 'kernel')``, ``('layers', '0', 'w')``).
Two spellings of a path are shown to users and matched by selectors:

* the ``jax.tree_util.keystr`` form, e.g. ``"['Dense_2']['kernel']"`` or
  ``"['layers'][0]['w']"``;
* the slash form, e.g. ``"Dense_2/kernel"`` or ``"layers/0/w"`` (:func:`slash`).

:func:`check_same_paths` and :func:`check_same_shapes` compare a tree with the one
it must mirror and name the first paths that differ.

**Optax states.** Optax states are nested pytrees (tuples from ``optax.chain``, ``MaskedState``,
``InjectHyperparamsState``, ...) whose moments (``mu``, ``nu``, ``trace``, ...)
mirror the params. Instead of knowing every state class, the helpers here find
those moments structurally:

* A node of the state is **params-like** if its tree structure is the params'
  structure, or a prefix of it where ``optax.MaskedNode`` stands for a masked-out
  param or subtree (as inside ``optax.masked``), and each array leaf has the
  shape of the param it stands for. The search goes top-down and stops at the
  first params-like node on each branch.
* A leaf is a **step count** if it is an integer scalar whose last path entry is
  named ``count`` (``ScaleByAdamState.count``, ``ScaleByScheduleState.count``,
  ``InjectHyperparamsState.count``, ...).

Every mapped leaf is cast back to its original dtype (bf16 moments stay bf16)
and must keep its shape, so the result has exactly the input's tree structure
and avals: it can be returned from either branch of ``lax.cond`` or carried
through ``lax.scan``. Everything here runs at trace time on the tree structure;
the array work is traceable.

Caveat: when params are a single array, any leaf of the same shape is
params-like (including scalar hyperparameters if params are a scalar); name-based
filtering (see :func:`field_name`) is then what tells moments apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "KeyPath",
    "NamedLeaves",
    "check_same_paths",
    "check_same_shapes",
    "count_paths",
    "field_name",
    "flatten_named",
    "is_count",
    "is_params_like",
    "key_names",
    "map_counts",
    "map_params_like",
    "params_like_paths",
    "slash",
]

KeyPath = tuple[Any, ...]
Names = tuple[str, ...]

_COUNT_FIELD = "count"


class _Mismatch(Exception):
    """Internal signal: a candidate node is not params-like."""


def _is_masked_node(node: Any) -> bool:
    return isinstance(node, optax.MaskedNode)


def field_name(key: Any) -> str | None:
    """Returns the name of one key-path entry, or None if it has no name.

    Args:
      key: an entry of a ``jax.tree_util`` key path (``GetAttrKey`` for
        NamedTuple/dataclass fields, ``DictKey`` for dict keys, ...).

    Returns:
      The attribute name, the dict key if it is a string, else None (sequence
      indices, flattened-index keys).
    """
    name = getattr(key, "name", None)
    if isinstance(name, str):
        return name
    dict_key = getattr(key, "key", None)
    if isinstance(dict_key, str):
        return dict_key
    return None


def key_names(path: KeyPath) -> Names:
    """Each entry of a key path as a string: dict keys, attribute names, indices.

    Unlike :func:`field_name`, a sequence index is spelled too (``'0'``).

    Example:
      >>> key_names(jax.tree_util.tree_flatten_with_path({"layers": [1]})[0][0][0])
      ('layers', '0')
    """
    return tuple(jax.tree_util.keystr((key,), simple=True) for key in path)


def slash(names: Names) -> str:
    """The slash spelling of a path: ``('Dense_0', 'kernel')`` -> ``'Dense_0/kernel'``."""
    return "/".join(names)


class NamedLeaves(NamedTuple):
    """A flattened tree with the key path of every leaf (see :func:`flatten_named`)."""

    names: list[Names]  # key_names of each path, in flattening order
    paths: list[KeyPath]
    leaves: list[Any]
    treedef: Any


def flatten_named(tree: Any) -> NamedLeaves:
    """Flattens ``tree`` with the key path (and its :func:`key_names`) of every leaf."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [path for path, _ in flat]
    return NamedLeaves([key_names(p) for p in paths], paths, [leaf for _, leaf in flat], treedef)


def check_same_paths(what: str, expected: Sequence[Names], got: Sequence[Names]) -> None:
    """Raises unless ``got`` has exactly the leaf paths of ``expected`` (the params').

    Raises:
      ValueError: naming the count of leaves and the first missing and unexpected paths.
    """
    if list(expected) == list(got):
        return
    want, have = set(expected), set(got)
    missing = [slash(p) for p in expected if p not in have][:5]
    extra = [slash(p) for p in got if p not in want][:5]
    raise ValueError(
        f"{what} must have the tree structure of params ({len(expected)} leaves), got "
        f"{len(got)} leaves; missing: {missing}, unexpected: {extra}"
    )


def check_same_shapes(what: str, names: Sequence[Names], live: Sequence[Any],
                      other: Sequence[Any]) -> None:
    """Raises unless each leaf of ``other`` has the shape of the live leaf at its path.

    Raises:
      ValueError: naming the first leaf whose shape differs.
    """
    for name, a, b in zip(names, live, other, strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"{what} leaf '{slash(name)}' has shape {jnp.shape(b)}, but the live leaf "
                f"has shape {jnp.shape(a)}; both must come from the same model"
            )


def is_params_like(node: Any, params: optax.Params) -> bool:
    """Whether ``node`` mirrors ``params`` (see the module docstring).

    Args:
      node: any subtree of an optimizer state.
      params: the parameters the state was built for (arrays or
        ``jax.ShapeDtypeStruct``).

    Returns:
      True if ``node`` has the params' structure (``MaskedNode`` allowed in
      place of a param or subtree), at least one array leaf, and each array leaf
      has the shape of its param.
    """
    if _is_masked_node(node):
        return False
    if not hasattr(params, "shape") and type(node) is not type(params):
        # Cheap rejection: otherwise jax.tree.map raises on the mismatch and builds its
        # message from repr() of the subtree, copying every moment to the host (83% of
        # a reset's host time in benchmarks/reinit_overhead.py).
        return False
    matched = []

    def check(candidate: Any, param: Any) -> None:
        if _is_masked_node(candidate):
            return
        if not (hasattr(candidate, "shape") and hasattr(param, "shape")):
            raise _Mismatch
        if tuple(candidate.shape) != tuple(param.shape):
            raise _Mismatch
        matched.append(True)

    try:
        jax.tree.map(check, node, params, is_leaf=_is_masked_node)
    except (_Mismatch, ValueError, TypeError):
        return False
    return bool(matched)


def _cast_like(new: Any, old: Any, path: KeyPath) -> jax.Array:
    new = jnp.asarray(new)
    if new.shape != old.shape:
        raise ValueError(
            f"mapped leaf at {jax.tree_util.keystr(path)} changed shape from {old.shape} to "
            f"{new.shape}; leaf functions must preserve shapes"
        )
    return new.astype(old.dtype)


def map_params_like(
    fn: Callable[[KeyPath, jax.Array], jax.Array],
    opt_state: optax.OptState,
    params: optax.Params,
) -> optax.OptState:
    """Applies ``fn`` to every array leaf of every params-like node of ``opt_state``.

    Args:
      fn: called as ``fn(path, leaf)`` where ``path`` is the key path of the
        params-like node (e.g. ``[0].mu``; use ``field_name(path[-1])`` to tell
        ``mu`` from ``nu``) and ``leaf`` one of its arrays; returns an array of
        the same shape (its dtype is cast back to the leaf's).
      opt_state: any optax state.
      params: the parameters the state was built for.

    Returns:
      A state with the same tree structure, shapes and dtypes; leaves outside
      params-like nodes and ``MaskedNode`` placeholders are unchanged.

    Raises:
      ValueError: if ``fn`` changes a leaf's shape.
    """

    def visit(path: KeyPath, node: Any) -> Any:
        if not is_params_like(node, params):
            return node
        return jax.tree.map(lambda leaf: _cast_like(fn(path, leaf), leaf, path), node)

    return jax.tree_util.tree_map_with_path(
        visit, opt_state, is_leaf=lambda node: is_params_like(node, params)
    )


def params_like_paths(opt_state: optax.OptState, params: optax.Params) -> list[KeyPath]:
    """Key paths of the params-like nodes of ``opt_state``, in flattening order.

    Args:
      opt_state: any optax state.
      params: the parameters the state was built for.

    Returns:
      One key path per params-like node (``jax.tree_util.keystr`` renders it).
    """
    found = []

    def visit(path: KeyPath, node: Any) -> Any:
        if is_params_like(node, params):
            found.append(path)
        return node

    jax.tree_util.tree_map_with_path(
        visit, opt_state, is_leaf=lambda node: is_params_like(node, params)
    )
    return found


def is_count(path: KeyPath, leaf: Any) -> bool:
    """Whether ``leaf`` at ``path`` is a step count (integer scalar named ``count``).

    Args:
      path: key path of the leaf.
      leaf: the leaf.

    Returns:
      True for integer scalars whose last path entry is named ``count``.
    """
    if not path or field_name(path[-1]) != _COUNT_FIELD:
        return False
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.integer) and jnp.ndim(leaf) == 0


def map_counts(fn: Callable[[jax.Array], jax.Array], opt_state: optax.OptState) -> optax.OptState:
    """Applies ``fn`` to every step count of ``opt_state`` (see :func:`is_count`).

    Args:
      fn: maps an integer scalar to a scalar (cast back to the count's dtype).
      opt_state: any optax state.

    Returns:
      A state with the same structure, shapes and dtypes.

    Raises:
      ValueError: if ``fn`` returns a non-scalar.
    """

    def visit(path: KeyPath, leaf: Any) -> Any:
        if not is_count(path, leaf):
            return leaf
        return _cast_like(fn(leaf), leaf, path)

    return jax.tree_util.tree_map_with_path(visit, opt_state)


def count_paths(opt_state: optax.OptState) -> list[KeyPath]:
    """Key paths of the step counts of ``opt_state``, in flattening order.

    Args:
      opt_state: any optax state.

    Returns:
      One key path per count leaf.
    """
    leaves = jax.tree_util.tree_flatten_with_path(opt_state)[0]
    return [path for path, leaf in leaves if is_count(path, leaf)]
