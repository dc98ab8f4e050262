"""Parameter shapes and types (``param_shapes``, ``model_params_types``) from a params tree.

AlgoPerf workloads describe every parameter leaf by a
:class:`~algoperf_reinit_workloads.spec.ParameterType` so that submissions can
apply generic per-type rules (no weight decay on biases and normalisation
scales, ...). Ours derive the types from the flax module and parameter names
(:func:`infer_param_types`); the models name their modules accordingly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from algoperf_reinit_workloads import spec

__all__ = ["infer_param_types", "param_shapes_of"]

_ATTENTION_KERNELS = {
    "query": spec.ParameterType.ATTENTION_Q,
    "key": spec.ParameterType.ATTENTION_K,
    "value": spec.ParameterType.ATTENTION_V,
    "out": spec.ParameterType.ATTENTION_OUT,
}


def param_shapes_of(params: Any) -> Any:
    """Returns the tree of :class:`~spec.ShapeTuple` for a params tree."""
    return jax.tree.map(lambda x: spec.ShapeTuple(tuple(int(d) for d in np.shape(x))), params)


def _norm_type(parent: str, leaf: str) -> spec.ParameterType | None:
    T = spec.ParameterType
    if "batchnorm" in parent or parent.startswith("bn"):
        return {"scale": T.BATCH_NORM_SCALE, "bias": T.BATCH_NORM_BIAS}.get(leaf)
    if "layernorm" in parent or parent.startswith("ln"):
        return {"scale": T.LAYER_NORM_SCALE, "bias": T.LAYER_NORM_BIAS}.get(leaf)
    return None


def _param_type(path: tuple[str, ...]) -> spec.ParameterType:
    """The type of one leaf from its key path (module names, then the leaf name)."""
    T = spec.ParameterType
    leaf = path[-1]
    parent = path[-2].lower() if len(path) > 1 else ""
    ancestors = [p.lower() for p in path[:-1]]
    found: spec.ParameterType | None
    if "batchnorm" in parent or parent.startswith(("bn", "ln")) or "layernorm" in parent:
        found = _norm_type(parent, leaf)
    elif leaf == "embedding":
        found = T.EMBEDDING
    elif any("attention" in a for a in ancestors[:-1]) and parent in _ATTENTION_KERNELS:
        found = {"bias": T.ATTENTION_BIAS, "kernel": _ATTENTION_KERNELS[parent]}.get(leaf)
    elif "conv" in parent:
        found = {"kernel": T.CONV_WEIGHT, "bias": T.BIAS}.get(leaf)
    else:
        found = {"kernel": T.WEIGHT, "bias": T.BIAS}.get(leaf)
    if found is None:
        raise ValueError(
            f"cannot infer the ParameterType of parameter {'/'.join(path)!r}: name modules "
            "so that the rules in infer_param_types' docstring apply"
        )
    return found


def infer_param_types(params: Mapping[str, Any]) -> dict[str, Any]:
    """Derives ``model_params_types`` from flax module and parameter names.

    Rules, applied to each leaf's key path (module names compared lower-case):

    * parent module contains ``batchnorm`` or starts with ``bn``: ``scale`` →
      ``BATCH_NORM_SCALE``, ``bias`` → ``BATCH_NORM_BIAS``;
    * parent contains ``layernorm`` or starts with ``ln``: ``LAYER_NORM_SCALE`` /
      ``LAYER_NORM_BIAS``;
    * leaf ``embedding`` (``flax.linen.Embed``) → ``EMBEDDING``;
    * parent ``query``/``key``/``value``/``out`` inside a module whose name
      contains ``attention``: ``kernel`` → ``ATTENTION_Q``/``_K``/``_V``/``_OUT``,
      ``bias`` → ``ATTENTION_BIAS``;
    * parent contains ``conv``: ``kernel`` → ``CONV_WEIGHT``, ``bias`` → ``BIAS``;
    * otherwise ``kernel`` → ``WEIGHT`` and ``bias`` → ``BIAS``.

    Anything else raises rather than guessing.

    Args:
      params: nested dict of parameter arrays.

    Returns:
      A nested dict with the same keys whose leaves are :class:`~spec.ParameterType`.

    Raises:
      ValueError: for a leaf no rule covers.

    Example:
      >>> import numpy as np
      >>> types = infer_param_types({"conv_1": {"kernel": np.ones((3, 3, 1, 4))},
      ...                            "bn_1": {"scale": np.ones(4), "bias": np.zeros(4)}})
      >>> types["conv_1"]["kernel"].name, types["bn_1"]["scale"].name
      ('CONV_WEIGHT', 'BATCH_NORM_SCALE')
    """

    def walk(tree: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for key, value in tree.items():
            if isinstance(value, Mapping):
                out[key] = walk(value, (*path, str(key)))
            else:
                out[key] = _param_type((*path, str(key)))
        return out

    return walk(params, ())
