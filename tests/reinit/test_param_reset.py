"""Reset policies for params and model state: modes, selection, strength, contracts."""

import enum
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit.reinit import (
    PARAMETER_TYPE_NAMES,
    ModelStateResetPolicy,
    ParamResetPolicy,
    param_reset_mask,
    reset_model_state,
    reset_params,
    strength_from_metric,
)
from algoperf_reinit.reinit._param_policy import DEFAULT_PERTURB, DEFAULT_SHRINK
from algoperf_reinit.reinit._param_reset import _mix_leaves

# ----------------------------------------------------------------------------- fixtures


class ParameterType(enum.Enum):
    """Stand-in for ``algoperf.spec.ParameterType`` (duck-typed by ``.name``)."""

    WEIGHT = 0
    BIAS = 1
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(8)(x))
        x = nn.relu(nn.Dense(8)(x))
        return nn.Dense(3)(x)


class BNNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.BatchNorm(use_running_average=not train)(nn.Dense(4)(x))
        return nn.Dense(2)(nn.relu(x))


def _fresh_containers(tree):
    """A copy of a cached tree: new containers (safe to mutate), the same arrays."""
    return jax.tree.map(lambda x: x, tree)


@functools.lru_cache
def _mlp_params(seed):
    return MLP().init(jax.random.key(seed), jnp.ones((1, 5)))["params"]


def mlp_params(seed):
    return _fresh_containers(_mlp_params(seed))


def dict_tree(seed, dtype=jnp.float32):
    return _fresh_containers(_dict_tree(seed, dtype))


@functools.lru_cache
def _dict_tree(seed, dtype):
    k = jax.random.split(jax.random.key(seed), 6)
    normal = lambda key, shape: jax.random.normal(key, shape, dtype)  # noqa: E731
    return {
        "embed": {"embedding": normal(k[0], (6, 4))},
        "layers": [
            {"w": normal(k[1], (4, 4)), "b": normal(k[2], (4,))},
            {"w": normal(k[3], (4, 4)), "b": normal(k[4], (4,))},
        ],
        "head": {"w": normal(k[5], (4, 2))},
    }


def kernel_bias_types(params):
    def kind(path, _):
        return ParameterType.WEIGHT if path[-1].key == "kernel" else ParameterType.BIAS

    return jax.tree_util.tree_map_with_path(kind, params)


class TinyWorkload:
    """Duck-typed AlgoPerf workload: init_model_fn, model_params_types, is_output_params."""

    def init_model_fn(self, rng):
        variables = BNNet().init(rng, jnp.ones((2, 3)))
        params, state = variables["params"], {"batch_stats": variables["batch_stats"]}

        def kind(path, _):
            names = [k.key for k in path]
            if names[0].startswith("BatchNorm"):
                return (
                    ParameterType.BATCH_NORM_SCALE
                    if names[-1] == "scale"
                    else (ParameterType.BATCH_NORM_BIAS)
                )
            return ParameterType.WEIGHT if names[-1] == "kernel" else ParameterType.BIAS

        self.model_params_types = jax.tree_util.tree_map_with_path(kind, params)
        return params, state

    def is_output_params(self, param_key):
        return param_key == "Dense_1"


@pytest.fixture(scope="module")
def bn_states():
    """(trained-looking, fresh) batch-norm model states of TinyWorkload."""
    workload = TinyWorkload()
    _, state = workload.init_model_fn(jax.random.key(0))
    _, fresh_state = workload.init_model_fn(jax.random.key(1))
    return jax.tree.map(lambda x: x + 3.0, state), fresh_state


def jitted_reset(policy, mask=None):
    return jax.jit(lambda p, f, s: reset_params(policy, p, f, s, mask=mask))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_bit_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x).view(np.uint8), np.asarray(y).view(np.uint8))


def oracle(p, f, shrink, perturb, s):
    """Independent float64 NumPy reference of the strength-scaled mix."""
    p, f = np.asarray(p, np.float64), np.asarray(f, np.float64)
    return (1 - s * (1 - shrink)) * p + s * perturb * f


# ----------------------------------------------------------------------------- config


class TestParamResetPolicy:
    def test_shrink_perturb_defaults(self):
        policy = ParamResetPolicy("shrink_perturb")
        assert (policy.shrink, policy.perturb) == (DEFAULT_SHRINK, DEFAULT_PERTURB) == (0.5, 0.1)
        assert policy.coefficients == (0.5, 0.1)

    @pytest.mark.parametrize("mode, coefficients", [("keep", (1.0, 0.0)), ("reinit", (0.0, 1.0))])
    def test_coefficients_of_other_modes(self, mode, coefficients):
        policy = ParamResetPolicy(mode)
        assert policy.coefficients == coefficients
        assert policy.shrink is None and policy.perturb is None

    def test_normalises_and_is_hashable(self):
        policy = ParamResetPolicy(
            "reinit", param_types=[ParameterType.WEIGHT, "bias"], model_state="keep"
        )
        assert policy.param_types == frozenset({"WEIGHT", "BIAS"})
        assert policy.model_state == ModelStateResetPolicy("keep")
        assert hash(policy) == hash(
            ParamResetPolicy("reinit", param_types={"BIAS", "WEIGHT"}, model_state="keep")
        )
        assert ParamResetPolicy("reinit", param_types="weight").param_types == {"WEIGHT"}
        assert set(PARAMETER_TYPE_NAMES) >= {"WEIGHT", "CONV_WEIGHT", "EMBEDDING"}

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            (dict(mode="reset"), ValueError, r"ParamResetPolicy.mode must be one of .*'reset'"),
            (
                dict(mode="shrink_perturb", shrink=1.5),
                ValueError,
                r"ParamResetPolicy.shrink must be in \[0, 1\], got 1.5",
            ),
            (
                dict(mode="shrink_perturb", perturb=math.nan),
                ValueError,
                r"ParamResetPolicy.perturb must be a number, not NaN, got nan",
            ),
            (
                dict(mode="shrink_perturb", shrink=True),
                TypeError,
                r"ParamResetPolicy.shrink must be a real number, got True of type bool",
            ),
            (
                dict(mode="shrink_perturb", shrink=1.0, perturb=0.0),
                ValueError,
                r"shrink=1.0 and perturb=0.0 leaves params unchanged; use mode='keep'",
            ),
            (
                dict(mode="reinit", shrink=0.3),
                ValueError,
                r"ParamResetPolicy.shrink must be None with mode='reinit', got 0.3; it applies "
                r"only to mode='shrink_perturb'",
            ),
            (
                dict(mode="reinit", pattern="Dense_(1"),
                ValueError,
                r"ParamResetPolicy.pattern must be a valid regular expression, got 'Dense_\(1'",
            ),
            (dict(mode="reinit", pattern=""), ValueError, r"pattern must be a non-empty str"),
            (
                dict(mode="reinit", param_types={"WEIGTH"}),
                ValueError,
                r"param_types must be parameter-type names from \('WEIGHT'.*got \{'WEIGTH'\}; "
                r"unknown: \['WEIGTH'\], did you mean 'WEIGHT'\?",
            ),
            (
                dict(mode="reinit", param_types=()),
                ValueError,
                r"param_types must be a non-empty set of parameter-type names, got \(\)",
            ),
            (dict(mode="reinit", output_layer=1), TypeError, r"output_layer must be True, False"),
            (
                dict(mode="reinit", model_state="fresh"),
                ValueError,
                r"ParamResetPolicy.model_state must be one of 'keep', 'reinit', got 'fresh'",
            ),
            (dict(mode="reinit", model_state=1), TypeError, r"model_state must be a str"),
        ],
    )
    def test_bad_config_is_rejected_with_field_value_and_rule(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            ParamResetPolicy(**kwargs)

    def test_model_state_policy_has_no_default_and_validates(self):
        with pytest.raises(TypeError):
            ModelStateResetPolicy()  # the choice is explicit
        with pytest.raises(ValueError, match=r"ModelStateResetPolicy.mode must be one of .*'zero'"):
            ModelStateResetPolicy("zero")


# ----------------------------------------------------------------------------- selection


class TestParamResetMask:
    def test_pattern_matches_keystr_and_slash_forms(self):
        params = mlp_params(0)
        for pattern in (r"\['Dense_2'\]\['kernel'\]", r"^Dense_2/kernel$"):
            mask = param_reset_mask(ParamResetPolicy("reinit", pattern=pattern), params)
            assert [p for p, m in _flat(mask) if m] == ["Dense_2/kernel"]
        mask = param_reset_mask(ParamResetPolicy("reinit", pattern=r"\[0\]"), dict_tree(0))
        assert [p for p, m in _flat(mask) if m] == ["layers/0/b", "layers/0/w"]

    def test_pattern_matching_nothing_lists_paths(self):
        policy = ParamResetPolicy("reinit", pattern="Conv_0")
        with pytest.raises(
            ValueError,
            match=r"pattern matches no leaf of params; pattern='Conv_0'; leaves are e\.g\. "
            r"\"\['Dense_0'\]\['bias'\]\" or 'Dense_0/bias'",
        ):
            param_reset_mask(policy, mlp_params(0))

    def test_param_types_by_enum_name_or_string(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit", param_types={"WEIGHT"})
        by_enum = param_reset_mask(policy, params, params_types=kernel_bias_types(params))
        as_str = jax.tree.map(str, kernel_bias_types(params))  # "ParameterType.WEIGHT"
        by_str = param_reset_mask(policy, params, params_types=as_str)
        assert by_enum == by_str
        assert [p for p, m in _flat(by_enum) if m] == [f"Dense_{i}/kernel" for i in range(3)]

    def test_param_types_errors(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit", param_types={"EMBEDDING"})
        with pytest.raises(ValueError, match=r"needs params_types=workload.model_params_types"):
            param_reset_mask(policy, params)
        with pytest.raises(
            ValueError, match=r"param_types matches no leaf.*params have types \['BIAS', 'WEIGHT'\]"
        ):
            param_reset_mask(policy, params, params_types=kernel_bias_types(params))
        wrong = kernel_bias_types(params)
        del wrong["Dense_2"]
        with pytest.raises(
            ValueError,
            match=r"params_types must have the tree structure of params \(6 leaves\), got 4 "
            r"leaves; missing: \['Dense_2/bias', 'Dense_2/kernel'\]",
        ):
            param_reset_mask(
                ParamResetPolicy("reinit", param_types={"WEIGHT"}), params, params_types=wrong
            )

    def test_output_layer_and_its_complement(self):
        params, is_out = mlp_params(0), lambda key: key == "Dense_2"
        only = param_reset_mask(
            ParamResetPolicy("reinit", output_layer=True), params, is_output_params=is_out
        )
        rest = param_reset_mask(
            ParamResetPolicy("reinit", output_layer=False), params, is_output_params=is_out
        )
        assert [p for p, m in _flat(only) if m] == ["Dense_2/bias", "Dense_2/kernel"]
        assert jax.tree.map(lambda a, b: a != b, only, rest) == jax.tree.map(lambda _: True, only)
        with pytest.raises(ValueError, match=r"output_layer=True needs is_output_params="):
            param_reset_mask(ParamResetPolicy("reinit", output_layer=True), params)
        with pytest.raises(ValueError, match=r"output_layer matches no leaf.*'Dense_0': False"):
            param_reset_mask(
                ParamResetPolicy("reinit", output_layer=True),
                params,
                is_output_params=lambda key: False,
            )

    def test_selectors_and_user_mask_intersect(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit", pattern="Dense_[12]", param_types={"WEIGHT"})
        user = jax.tree_util.tree_map_with_path(lambda p, _: p[0].key != "Dense_1", params)
        mask = param_reset_mask(policy, params, params_types=kernel_bias_types(params), mask=user)
        assert [p for p, m in _flat(mask) if m] == ["Dense_2/kernel"]
        callable_mask = param_reset_mask(
            policy,
            params,
            params_types=kernel_bias_types(params),
            mask=lambda p: jax.tree_util.tree_map_with_path(lambda q, _: q[0].key != "Dense_1", p),
        )
        assert callable_mask == mask

    def test_empty_intersection_is_an_error(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit", pattern="Dense_0", output_layer=True)
        with pytest.raises(
            ValueError,
            match=r"together match no leaf of params \(leaves matched by each: "
            r"\{'pattern': 2, 'output_layer': 2\}\)",
        ):
            param_reset_mask(policy, params, is_output_params=lambda key: key == "Dense_2")

    def test_bad_user_masks(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit")
        with pytest.raises(ValueError, match=r"mask must have the tree structure of params"):
            param_reset_mask(policy, params, mask={"Dense_0": True})
        not_bool = jax.tree.map(lambda _: 1, params)
        with pytest.raises(TypeError, match=r"mask leaf 'Dense_0/bias' must be a bool, got 1"):
            param_reset_mask(policy, params, mask=not_bool)

    def test_accepts_frozendict_params_with_dict_trees(self):
        from flax.core import freeze

        params = mlp_params(0)
        mask = param_reset_mask(
            ParamResetPolicy("reinit", param_types={"BIAS"}),
            freeze(params),
            params_types=kernel_bias_types(params),
        )
        assert sum(jax.tree.leaves(mask)) == 3


def _flat(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(p, simple=True, separator="/"), leaf) for p, leaf in flat]


# ----------------------------------------------------------------------------- modes


TREES = {"flax_mlp": mlp_params, "dict_tree": dict_tree}


@pytest.mark.parametrize("tree", list(TREES))
class TestResetParamsModes:
    def test_keep_returns_params_unchanged(self, tree):
        params, fresh = TREES[tree](0), TREES[tree](1)
        out = jitted_reset(ParamResetPolicy("keep"))(params, fresh, 1.0)
        assert_bit_equal(out, params)

    def test_reinit_is_exactly_the_fresh_init(self, tree):
        params, fresh = TREES[tree](0), TREES[tree](1)
        out = jitted_reset(ParamResetPolicy("reinit"))(params, fresh, 1.0)
        assert_bit_equal(out, fresh)

    @pytest.mark.parametrize("shrink, perturb", [(DEFAULT_SHRINK, DEFAULT_PERTURB), (0.3, 0.7)])
    def test_shrink_perturb_matches_the_formula(self, tree, shrink, perturb):
        params, fresh = TREES[tree](0), TREES[tree](1)
        policy = ParamResetPolicy("shrink_perturb", shrink=shrink, perturb=perturb)
        out = jitted_reset(policy)(params, fresh, 1.0)
        for o, p, f in zip(leaves(out), leaves(params), leaves(fresh), strict=True):
            np.testing.assert_allclose(o, shrink * p + perturb * f, rtol=1e-6, atol=1e-7)


class TestSelectiveReset:
    @pytest.mark.parametrize(
        "policy, kwargs, expected",
        [
            (
                ParamResetPolicy("reinit", pattern=r"^Dense_1/"),
                {},
                {"Dense_1/bias", "Dense_1/kernel"},
            ),
            (
                ParamResetPolicy("shrink_perturb", param_types={"WEIGHT"}),
                dict(params_types=True),
                {"Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"},
            ),
            (
                ParamResetPolicy("reinit", output_layer=True),
                dict(is_output_params=lambda key: key == "Dense_2"),
                {"Dense_2/bias", "Dense_2/kernel"},
            ),
            (
                ParamResetPolicy("shrink_perturb"),
                dict(mask=True),
                {"Dense_0/bias"},
            ),
        ],
        ids=["pattern", "types", "output_layer", "mask"],
    )
    def test_only_selected_leaves_change(self, policy, kwargs, expected):
        params, fresh = mlp_params(0), mlp_params(1)
        fresh = jax.tree.map(lambda x: x + 1.0, fresh)  # fresh biases are 0: make them differ
        if kwargs.get("params_types"):
            kwargs["params_types"] = kernel_bias_types(params)
        if kwargs.get("mask"):
            kwargs["mask"] = jax.tree_util.tree_map_with_path(
                lambda p, _: jax.tree_util.keystr(p) == "['Dense_0']['bias']", params
            )
        mask = param_reset_mask(policy, params, **kwargs)
        out = jitted_reset(policy, mask)(params, fresh, 1.0)
        for (path, o), p in zip(_flat(out), leaves(params), strict=True):
            if path in expected:
                assert not np.array_equal(np.asarray(o), p), path
            else:
                np.testing.assert_array_equal(np.asarray(o), p, err_msg=path)

    def test_unselected_leaves_are_the_same_objects_eagerly(self):
        params, fresh = mlp_params(0), mlp_params(1)
        out = reset_params(ParamResetPolicy("reinit", pattern="Dense_2"), params, fresh)
        assert out["Dense_0"]["kernel"] is params["Dense_0"]["kernel"]
        assert out["Dense_2"]["kernel"] is not params["Dense_2"]["kernel"]

    def test_selectors_needing_workload_data_need_a_mask(self):
        params = mlp_params(0)
        with pytest.raises(ValueError, match=r"need workload data: build the mask once"):
            reset_params(ParamResetPolicy("reinit", output_layer=True), params, params)


# ----------------------------------------------------------------------------- strength


class TestStrength:
    def test_strength_zero_keeps_params_bit_exactly(self):
        params = dict_tree(0)
        params["layers"][0]["b"] = params["layers"][0]["b"].at[0].set(-0.0)  # sign of zero too
        for mode in ("reinit", "shrink_perturb"):
            out = jitted_reset(ParamResetPolicy(mode))(params, dict_tree(1), 0.0)
            assert_bit_equal(out, params)

    def test_strength_one_is_the_full_policy(self):
        params, fresh = dict_tree(0), dict_tree(1)
        policy = ParamResetPolicy("shrink_perturb", shrink=0.4, perturb=0.3)
        step = jitted_reset(policy)
        assert_bit_equal(step(params, fresh, 1.0), reset_params(policy, params, fresh))
        for o, p, f in zip(
            leaves(step(params, fresh, 1.0)), leaves(params), leaves(fresh), strict=True
        ):
            np.testing.assert_allclose(o, oracle(p, f, 0.4, 0.3, 1.0), rtol=1e-6, atol=1e-7)

    @pytest.mark.parametrize("mode", ["reinit", "shrink_perturb"])
    @pytest.mark.parametrize("s", [0.25, 0.6])
    def test_intermediate_strength_interpolates(self, mode, s):
        params, fresh = dict_tree(0), dict_tree(1)
        policy = ParamResetPolicy(mode)
        shrink, perturb = policy.coefficients
        out = jitted_reset(policy)(params, fresh, s)
        for o, p, f in zip(leaves(out), leaves(params), leaves(fresh), strict=True):
            np.testing.assert_allclose(o, oracle(p, f, shrink, perturb, s), rtol=1e-6, atol=1e-6)

    def test_traced_strength_is_clipped_and_nan_means_keep(self):
        params, fresh = dict_tree(0), dict_tree(1)
        step = jitted_reset(ParamResetPolicy("reinit"))
        assert_bit_equal(step(params, fresh, jnp.float32(jnp.nan)), params)
        assert_bit_equal(step(params, fresh, jnp.float32(-3.0)), params)
        assert_bit_equal(step(params, fresh, jnp.float32(7.0)), fresh)

    @pytest.mark.parametrize(
        "strength, error, match",
        [
            (1.5, ValueError, r"strength must be in \[0, 1\], got 1.5"),
            (math.nan, ValueError, r"strength must be a number, not NaN, got nan"),
            (True, TypeError, r"strength must be a number or a scalar array, got True"),
            ("1", TypeError, r"strength must be a number or a scalar array, got '1' of type str"),
            (jnp.ones(2), ValueError, r"strength must be a scalar, got shape \(2,\)"),
        ],
    )
    def test_bad_strength(self, strength, error, match):
        params = dict_tree(0)
        with pytest.raises(error, match=match):
            reset_params(ParamResetPolicy("reinit"), params, params, strength)


# ----------------------------------------------------------------------------- contracts


class TestContracts:
    def test_bf16_stays_bf16_when_mixing_in_float32(self):
        params, fresh = dict_tree(0, jnp.bfloat16), dict_tree(1, jnp.float32)
        for mode in ("reinit", "shrink_perturb"):
            out = jitted_reset(ParamResetPolicy(mode))(params, fresh, 0.5)
            assert jax.tree.structure(out) == jax.tree.structure(params)
            assert {x.dtype for x in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}
        out = jitted_reset(ParamResetPolicy("shrink_perturb"))(params, fresh, 1.0)
        for o, p, f in zip(leaves(out), leaves(params), leaves(fresh), strict=True):
            expected = (0.5 * p.astype(np.float32) + 0.1 * f).astype(jnp.bfloat16)
            np.testing.assert_array_equal(o.astype(np.float32), expected.astype(np.float32))

    def test_structure_and_dtypes_are_stable_under_lax_cond(self):
        from flax.core import freeze

        params, fresh = freeze(mlp_params(0)), mlp_params(1)  # FrozenDict live, dict fresh
        policy = ParamResetPolicy("shrink_perturb")

        @jax.jit
        def maybe_reset(pred, p, f):
            return jax.lax.cond(pred, lambda: reset_params(policy, p, f), lambda: p)

        out = maybe_reset(True, params, fresh)
        assert jax.tree.structure(out) == jax.tree.structure(params)
        assert not np.array_equal(out["Dense_0"]["kernel"], params["Dense_0"]["kernel"])
        assert_bit_equal(maybe_reset(False, params, fresh), params)

    @pytest.mark.parametrize("fresh_placement", ["replicated", "uncommitted"])
    def test_replicated_named_sharding_is_preserved(self, fresh_placement):
        mesh = Mesh(np.array(jax.devices()), ("batch",))
        replicated = NamedSharding(mesh, P())
        params = jax.device_put(mlp_params(0), replicated)
        fresh = mlp_params(1)
        if fresh_placement == "replicated":
            fresh = jax.device_put(fresh, replicated)
        for policy in (ParamResetPolicy("reinit"), ParamResetPolicy("shrink_perturb")):
            for out in (
                reset_params(policy, params, fresh, 0.5),
                jitted_reset(policy)(params, fresh, 0.5),
            ):
                for leaf in jax.tree.leaves(out):
                    assert isinstance(leaf.sharding, NamedSharding)
                    assert leaf.sharding.mesh.axis_names == ("batch",)
                    assert leaf.sharding.spec == P() and leaf.sharding.is_fully_replicated

    def test_no_recompile_for_new_strengths_or_new_fresh_params(self):
        params = dict_tree(0)
        policy = ParamResetPolicy("shrink_perturb", shrink=0.45)  # coefficients unique to this test
        reset_params(policy, params, dict_tree(1), 0.3)
        compiled = _mix_leaves._cache_size()
        for i, s in enumerate([0.0, 0.5, 1.0, np.float32(0.7), jnp.float32(0.2), 1]):
            reset_params(policy, params, dict_tree(2 + i), s)
        assert _mix_leaves._cache_size() == compiled

    def test_outer_jit_traces_once(self):
        traces = []
        policy = ParamResetPolicy("reinit", pattern="layers")

        @jax.jit
        def step(p, f, s):
            traces.append(None)
            return reset_params(policy, p, f, s)

        for i, s in enumerate([0.1, 0.9, 0.0, 1.0]):
            step(dict_tree(0), dict_tree(1 + i), s)
        assert len(traces) == 1

    def test_fresh_params_must_match(self):
        params = mlp_params(0)
        policy = ParamResetPolicy("reinit")
        with pytest.raises(
            ValueError,
            match=r"fresh_params must have the tree structure of params \(6 leaves\), got 6 "
            r"leaves; missing: \['Dense_2/bias'\], unexpected: \['Dense_2/b'\]",
        ):
            fresh = mlp_params(1)
            fresh["Dense_2"] = {"b": fresh["Dense_2"]["bias"], "kernel": fresh["Dense_2"]["kernel"]}
            reset_params(policy, params, fresh)
        wide = MLP().init(jax.random.key(1), jnp.ones((1, 7)))["params"]
        with pytest.raises(
            ValueError, match=r"fresh_params leaf 'Dense_0/kernel' has shape \(7, 8\), but the live"
        ):
            reset_params(policy, params, wide)

    def test_integer_leaves_cannot_be_selected(self):
        params = {"w": jnp.ones(3), "count": jnp.zeros((), jnp.int32)}
        with pytest.raises(TypeError, match=r"selected leaf 'count' has dtype int32"):
            reset_params(ParamResetPolicy("reinit"), params, params)
        out = reset_params(ParamResetPolicy("reinit", pattern="w"), params, params)
        assert out["count"] is params["count"]

    def test_wrong_policy_type(self):
        with pytest.raises(TypeError, match=r"policy must be a ParamResetPolicy, got .* of type dict"):
            reset_params({"mode": "reinit"}, {}, {})


# ----------------------------------------------------------------------------- model state


class TestResetModelState:
    @pytest.fixture(autouse=True)
    def _states(self, bn_states):
        self.state, self.fresh_state = bn_states

    def step(self, policy):
        return jax.jit(lambda m, f, s: reset_model_state(policy, m, f, s))

    def test_keep_and_reinit(self):
        assert_bit_equal(
            self.step(ModelStateResetPolicy("keep"))(self.state, self.fresh_state, 1.0), self.state
        )
        out = self.step(ModelStateResetPolicy("reinit"))(self.state, self.fresh_state, 1.0)
        assert_bit_equal(out, self.fresh_state)

    def test_strength_zero_keeps_model_state(self):
        policy = ParamResetPolicy("shrink_perturb", model_state="reinit")
        assert_bit_equal(self.step(policy)(self.state, self.fresh_state, 0.0), self.state)
        assert_bit_equal(self.step(policy)(self.state, self.fresh_state, 0.3), self.fresh_state)

    def test_unset_model_state_is_an_error_when_params_change(self):
        with pytest.raises(
            ValueError,
            match=r"ParamResetPolicy.model_state is None, but mode='reinit' changes parameters "
            r"and the model has model state \(2 leaves, e\.g\. \['batch_stats/BatchNorm_0/mean'",
        ):
            reset_model_state(ParamResetPolicy("reinit"), self.state, self.fresh_state)

    def test_unset_model_state_is_fine_when_nothing_to_decide(self):
        assert reset_model_state(ParamResetPolicy("keep"), self.state, self.fresh_state) is (
            self.state
        )
        for empty in ({}, None):
            assert reset_model_state(ParamResetPolicy("reinit"), empty, empty) is empty

    def test_dtype_structure_and_errors(self):
        state = jax.tree.map(lambda x: x.astype(jnp.bfloat16), self.state)
        out = reset_model_state(ModelStateResetPolicy("reinit"), state, self.fresh_state)
        assert jax.tree.structure(out) == jax.tree.structure(state)
        assert {x.dtype for x in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}
        with pytest.raises(ValueError, match=r"fresh_model_state must have the tree structure"):
            reset_model_state(ModelStateResetPolicy("reinit"), self.state, {"batch_stats": {}})
        with pytest.raises(TypeError, match=r"policy must be a ModelStateResetPolicy or a Param"):
            reset_model_state("reinit", self.state, self.fresh_state)


# ----------------------------------------------------------------------------- metric


class TestStrengthFromMetric:
    @pytest.mark.parametrize(
        "value, target, mode, kwargs, expected",
        [
            (0.75, 0.5, "min", {}, 0.5),  # loss 50 % above target
            (1.5, 0.5, "min", {}, 1.0),  # clipped
            (0.4, 0.5, "min", {}, 0.0),  # target met
            (0.375, 0.75, "max", {}, 0.5),  # accuracy half of target
            (0.375, 0.75, "max", dict(full_at=0.25), 1.0),
            (0.625, 0.5, "max", {}, 0.0),
            (0.25, 0.0, "min", {}, 0.25),  # zero target: absolute gap
            (math.nan, 0.5, "min", {}, 0.0),  # unusable metric: no reset
            (math.inf, 0.5, "min", {}, 1.0),
            (np.float32(0.75), 0.5, "min", {}, 0.5),
            (jnp.float32(0.75), 0.5, "min", {}, 0.5),
        ],
    )
    def test_values(self, value, target, mode, kwargs, expected):
        strength = strength_from_metric(value, target, mode, **kwargs)
        assert isinstance(strength, float)
        assert strength == pytest.approx(expected)

    @pytest.mark.parametrize(
        "args, kwargs, error, match",
        [
            (
                (0.5, 0.5, "lower"),
                {},
                ValueError,
                r"mode must be one of 'min', 'max', got 'lower'",
            ),
            ((0.5, math.nan, "min"), {}, ValueError, r"target must be a number, not NaN, got nan"),
            ((0.5, 0.5, "min"), dict(full_at=0.0), ValueError, r"full_at must be > 0, got 0.0"),
            (("x", 0.5, "min"), {}, TypeError, r"value must be a scalar number, got 'x'"),
            (([0.5], 0.5, "min"), {}, TypeError, r"value must be a scalar number, got \[0.5\]"),
        ],
    )
    def test_errors(self, args, kwargs, error, match):
        with pytest.raises(error, match=match):
            strength_from_metric(*args, **kwargs)

    def test_drives_a_reset_end_to_end(self):
        """The AlgoPerf pattern: mask once, then reset with a fresh key per cycle."""
        workload = TinyWorkload()
        params, state = workload.init_model_fn(jax.random.key(0))
        policy = ParamResetPolicy(
            "shrink_perturb", param_types={"WEIGHT", "BIAS"}, model_state="reinit"
        )
        mask = param_reset_mask(
            policy,
            params,
            params_types=workload.model_params_types,
            is_output_params=workload.is_output_params,
        )
        reset = jax.jit(
            lambda p, m, fp, fm, s: (
                reset_params(policy, p, fp, s, mask=mask),
                reset_model_state(policy, m, fm, s),
            )
        )
        base_key = jax.random.key(42)
        for cycle, loss in enumerate([0.5, 0.75]):
            fresh_params, fresh_state = workload.init_model_fn(jax.random.fold_in(base_key, cycle))
            s = strength_from_metric(loss, target=0.5, mode="min")
            new_params, new_state = reset(params, state, fresh_params, fresh_state, s)
            if s == 0.0:
                assert_bit_equal((new_params, new_state), (params, state))
            else:
                bn = new_params["BatchNorm_0"]["scale"]
                np.testing.assert_array_equal(bn, params["BatchNorm_0"]["scale"])  # not selected
                np.testing.assert_allclose(
                    new_params["Dense_1"]["kernel"],
                    oracle(
                        params["Dense_1"]["kernel"], fresh_params["Dense_1"]["kernel"], 0.5, 0.1, s
                    ),
                    rtol=1e-6,
                    atol=1e-7,
                )
                assert_bit_equal(new_state, fresh_state)
