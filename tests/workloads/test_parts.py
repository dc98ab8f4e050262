"""The workloads' own modules: validation, forward-pass mode, stream, evaluation padding."""

import enum

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algoperf_reinit_workloads import ForwardPassMode, evaluation, stream
from algoperf_reinit_workloads import _validation as v
from algoperf_reinit_workloads.base import mode_is_train
from algoperf_reinit_workloads.layers import Dropout


class TestValidation:
    def test_integer(self):
        assert v.integer("n", np.int64(3), minimum=1) == 3
        with pytest.raises(ValueError, match=r"^n must be an int >= 1, got 0$"):
            v.integer("n", 0, minimum=1)
        for bad in (True, 2.0, "2", None):
            with pytest.raises(TypeError, match=r"^n must be an int, got .* of type"):
                v.integer("n", bad)

    def test_in_range(self):
        assert v.in_range("m", 0.5, 0.0, 1.0, high_open=True) == 0.5
        with pytest.raises(ValueError, match=r"^m must be in \[0, 1\), got 1.0$"):
            v.in_range("m", 1.0, 0.0, 1.0, high_open=True)
        with pytest.raises(ValueError, match=r"m must be in \[0, 1\], got nan"):
            v.in_range("m", float("nan"), 0.0, 1.0)
        with pytest.raises(TypeError, match="m must be a real number, got False of type bool"):
            v.in_range("m", False, 0.0, 1.0)

    def test_choice(self):
        assert v.choice("c", "a", ("a", "b")) == "a"
        with pytest.raises(ValueError, match=r"^c must be one of 'a', 'b', got 'z'; fix it$"):
            v.choice("c", "z", ("a", "b"), fix="fix it")
        with pytest.raises(TypeError, match="c must be one of 'a', 'b', got 1 of type int"):
            v.choice("c", 1, ("a", "b"))


class OtherMode(enum.Enum):  # e.g. AlgoPerf's own enum: compared by name
    TRAIN = "t"
    EVAL = "e"
    PREDICT = "p"


def test_mode_is_train_by_name():
    assert mode_is_train(ForwardPassMode.TRAIN) and not mode_is_train(ForwardPassMode.EVAL)
    assert mode_is_train(OtherMode.TRAIN) and not mode_is_train(OtherMode.EVAL)
    with pytest.raises(ValueError, match=r"mode must be ForwardPassMode\.TRAIN or \.EVAL"):
        mode_is_train(OtherMode.PREDICT)
    with pytest.raises(TypeError, match="got 'train' of type str"):
        mode_is_train("train")


def test_dropout_rate_checks():
    layer = Dropout()
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\], got 1.5"):
        layer.apply({}, x, 1.5, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
    with pytest.raises(TypeError, match="dropout rate must be a real number, got True"):
        layer.apply({}, x, True, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})


class TestStream:
    def test_indices_are_a_pure_function_of_key_step_and_size(self):
        perms = stream.EpochPermutations(10)
        key = jax.random.PRNGKey(4)
        first = [perms.indices(key, step, 4) for step in range(5)]  # 20 = two epochs
        again = stream.EpochPermutations(10)
        for step in (3, 0, 4):
            np.testing.assert_array_equal(again.indices(key, step, 4), first[step])
        flat = np.concatenate(first)
        assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
        typed = jax.random.key(4)  # a typed key names the same stream
        np.testing.assert_array_equal(perms.indices(typed, 1, 4), first[1])

    def test_bad_arguments(self):
        perms = stream.EpochPermutations(10)
        key = jax.random.PRNGKey(0)
        with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
            perms.indices(key, -1, 4)
        with pytest.raises(TypeError, match=r"step must be an int, got 1\.0"):
            perms.indices(key, 1.0, 4)
        with pytest.raises(ValueError, match="global_batch_size must be an int >= 1, got 0"):
            perms.indices(key, 0, 0)
        with pytest.raises(TypeError, match="data_rng must be a JAX PRNG key"):
            perms.indices(jnp.ones(2), 0, 4)

    def test_train_and_eval_streams(self):
        assert list(stream.train_stream(lambda s: s * 10, 3, 2)) == [30, 40]
        assert list(stream.eval_stream(["a", "b"], False, None)) == ["a", "b"]
        assert list(stream.eval_stream(["a", "b"], True, 5)) == ["a", "b", "a", "b", "a"]


def test_padded_batches_add_zero_weight_rows():
    arrays = {"inputs": np.arange(5.0)[:, None], "weights": np.ones(5, np.float32)}
    batches = evaluation.padded_batches(arrays, 2)
    assert [len(b["inputs"]) for b in batches] == [2, 2, 2]
    assert batches[-1]["weights"].tolist() == [1.0, 0.0]
    assert batches[-1]["inputs"].tolist() == [[4.0], [0.0]]


def test_split_means_weight_by_the_valid_count_under_jit():
    sums = jax.jit(lambda x: {"loss": jnp.sum(x), "num_valid": jnp.float32(x.size)})
    means = evaluation.split_means([sums(jnp.ones(3)), sums(jnp.full(1, 5.0))])
    assert means == {"loss": 2.0}


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(hidden_sizes=(8, 0)), ValueError, r"hidden_sizes\[1\] must be an int >= 1, got 0"),
    (dict(hidden_sizes=(8.0,)), TypeError, r"hidden_sizes\[0\] must be an int, got 8\.0"),
    (dict(bn_momentum=1.0), ValueError, r"bn_momentum must be in \[0, 1\), got 1\.0"),
    (dict(eval_batch_size=0), ValueError, "eval_batch_size must be an int >= 1, got 0"),
])
def test_digits_arguments(kwargs, error, message):
    from algoperf_reinit_workloads import DigitsWorkload

    with pytest.raises(error, match=message):
        DigitsWorkload(**kwargs)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(seq_len=0), ValueError, "seq_len must be an int >= 1, got 0"),
    (dict(width=True), TypeError, "width must be an int, got True of type bool"),
    (dict(width=30, num_heads=4), ValueError, "num_heads must be a divisor of width=30, got 4"),
    (dict(missing="ignore"), ValueError, "missing must be one of 'error', 'skip', got 'ignore'"),
])
def test_stdlib_lm_arguments(kwargs, error, message):
    from algoperf_reinit_workloads import StdlibLMWorkload

    with pytest.raises(error, match=message):
        StdlibLMWorkload(**kwargs)
