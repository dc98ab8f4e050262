"""infer_param_types: every rule of its docstring, and the error for a leaf no rule covers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algoperf_reinit_workloads import ShapeTuple, infer_param_types, param_shapes_of
from algoperf_reinit_workloads import base as base_module
from algoperf_reinit_workloads.param_types import infer_param_types as from_module

LEAF = np.zeros(2)


def types_of(tree):
    return jax.tree.map(lambda t: t.name, infer_param_types(tree))


def test_public_name_is_the_modules():
    assert infer_param_types is from_module is base_module.infer_param_types


@pytest.mark.parametrize("parent", ["batchnorm_0", "BatchNorm_1", "bn", "bn_out", "my_batchnorm"])
def test_batch_norm_parents(parent):
    assert types_of({parent: {"scale": LEAF, "bias": LEAF}}) == {
        parent: {"scale": "BATCH_NORM_SCALE", "bias": "BATCH_NORM_BIAS"}}


@pytest.mark.parametrize("parent", ["layernorm", "LayerNorm_0", "ln_attention", "ln"])
def test_layer_norm_parents(parent):
    assert types_of({parent: {"scale": LEAF, "bias": LEAF}}) == {
        parent: {"scale": "LAYER_NORM_SCALE", "bias": "LAYER_NORM_BIAS"}}


def test_embedding_leaf_wherever_it_is():
    assert types_of({"token_embed": {"embedding": LEAF}, "deep": {"x": {"embedding": LEAF}}}) == {
        "token_embed": {"embedding": "EMBEDDING"}, "deep": {"x": {"embedding": "EMBEDDING"}}}


def test_attention_projections_inside_an_attention_module():
    tree = {"layers_0": {"SelfAttention": {
        name: {"kernel": LEAF, "bias": LEAF} for name in ("query", "key", "value", "out")}}}
    got = types_of(tree)["layers_0"]["SelfAttention"]
    assert {k: v["kernel"] for k, v in got.items()} == {
        "query": "ATTENTION_Q", "key": "ATTENTION_K", "value": "ATTENTION_V",
        "out": "ATTENTION_OUT"}
    assert {v["bias"] for v in got.values()} == {"ATTENTION_BIAS"}


def test_query_outside_an_attention_module_is_a_plain_weight():
    # "attention" must name an ancestor above the projection, not the projection itself.
    assert types_of({"query": {"kernel": LEAF}, "attention": {"kernel": LEAF}}) == {
        "query": {"kernel": "WEIGHT"}, "attention": {"kernel": "WEIGHT"}}


@pytest.mark.parametrize("parent", ["conv", "Conv_0", "stem_conv"])
def test_conv_parents(parent):
    assert types_of({parent: {"kernel": LEAF, "bias": LEAF}}) == {
        parent: {"kernel": "CONV_WEIGHT", "bias": "BIAS"}}


def test_otherwise_kernel_is_a_weight_and_bias_a_bias():
    assert types_of({"hidden_0": {"kernel": LEAF, "bias": LEAF}, "kernel": LEAF}) == {
        "hidden_0": {"kernel": "WEIGHT", "bias": "BIAS"}, "kernel": "WEIGHT"}


@pytest.mark.parametrize(("tree", "path"), [
    ({"dense": {"weight": LEAF}}, "dense/weight"),
    ({"bn": {"kernel": LEAF}}, "bn/kernel"),  # a norm module has no kernel: no fall-through
    ({"ln_f": {"mean": LEAF}}, "ln_f/mean"),
    ({"attention": {"query": {"scale": LEAF}}}, "attention/query/scale"),
    ({"conv": {"scale": LEAF}}, "conv/scale"),
    ({"scale": LEAF}, "scale"),
])
def test_a_leaf_no_rule_covers_raises(tree, path):
    with pytest.raises(ValueError, match=f"cannot infer the ParameterType of parameter '{path}'"):
        infer_param_types(tree)


def test_result_keeps_the_tree_and_the_shapes_under_jit():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 4)), "bias": jnp.zeros(4)},
              "output": {"kernel": jnp.ones((4, 10))}}
    types = infer_param_types(params)
    assert jax.tree.structure(types) == jax.tree.structure(params)
    shapes = param_shapes_of(params)
    assert shapes["conv"]["kernel"] == ShapeTuple((3, 3, 1, 4))
    # Building zeros from the shapes inside jit: the ShapeTuple leaves are static.
    zeros = jax.jit(lambda: jax.tree.map(lambda s: jnp.zeros(s.shape_tuple), shapes))()
    assert jax.tree.map(jnp.shape, zeros) == jax.tree.map(jnp.shape, params)
