"""The small AlgoPerf types the bundled workloads use, restated from the AlgoPerf docs.

AlgoPerf's ``algoperf.spec`` is not installable on its own, so the enums and
aliases a workload needs are written out here. Names follow AlgoPerf v0.6;
the enum *values* are our own, so code that must work with both our workloads
and AlgoPerf's should compare members by ``.name`` (``t.name == "BIAS"``),
never by identity or value.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import jax

__all__ = [
    "ForwardPassMode",
    "LossType",
    "ModelAuxiliaryState",
    "ParameterContainer",
    "ParameterType",
    "ParameterTypeTree",
    "RandomState",
    "ShapeTuple",
    "Tensor",
    "TrainingCompleteError",
]

Tensor = jax.Array
RandomState = jax.Array  # a raw uint32[2] threefry key (or a typed key)
ParameterContainer = Mapping[str, Any]  # nested dict of arrays, as flax linen returns it
ModelAuxiliaryState = Any  # e.g. {"batch_stats": ...}; {} for models without state
ParameterTypeTree = Mapping[str, Any]  # same structure as the params, ParameterType leaves


class ForwardPassMode(enum.Enum):
    """Whether ``model_fn`` runs a training or an evaluation forward pass."""

    TRAIN = 0
    EVAL = 1


class LossType(enum.Enum):
    """The loss a workload optimises (``workload.loss_type``)."""

    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ParameterType(enum.Enum):
    """The role of one parameter leaf (``workload.model_params_types``).

    Members carry AlgoPerf's names. Submissions may use them for generic,
    per-type rules (e.g. no weight decay on biases and normalisation scales).
    """

    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14


@dataclasses.dataclass(frozen=True)
class ShapeTuple:
    """The shape of one parameter leaf (``workload.param_shapes``).

    Not a pytree node, so ``jax.tree.map`` treats it as a leaf:
    ``jax.tree.map(lambda s: jnp.zeros(s.shape_tuple), workload.param_shapes)``.

    Attributes:
      shape_tuple: the leaf's shape.
    """

    shape_tuple: tuple[int, ...]


class TrainingCompleteError(Exception):
    """Raised by a submission's ``update_params`` to end training early."""
