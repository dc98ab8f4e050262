"""Generic batch detection and the truncate / re-pack ops, against numpy oracles."""

import doctest
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit.data_efficiency import (
    _seqlen_ops,
    count_weights,
    reshape_batch,
    reshaped_rows,
    seqlen_op,
    sequence_batch,
    truncate_batch,
)


def test_doctests():
    assert doctest.testmod(_seqlen_ops).failed == 0


def reshape_oracle(x, length, multiple=1):
    """Spec §3.9 restated with loops: cut rows, append each row's last L, keep ceil(B*S/L)."""
    b, s = x.shape
    rows = [x[i, c * length:(c + 1) * length] for i in range(b) for c in range(s // length)]
    rows += [x[i, s - length:] for i in range(b)]
    kept = -(-b * s // length)
    rows = rows[:kept]
    while len(rows) % multiple:
        rows.append(np.zeros(length, x.dtype))
    return np.stack(rows)


def lm_batch(b, s, seed=0, weights_dtype=np.float32, padded=True):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 256, size=(b, s + 1)).astype(np.int32)
    weights = np.ones((b, s), weights_dtype)
    if padded:
        weights[:, s - rng.integers(0, s, size=b)[0]:] = 0  # padding at the end
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "weights": weights}


SIZES = [(1, 7), (3, 10), (5, 16), (4, 13)]
LENGTHS = [1, 3, 4, 7, 8, 16, 20]


@pytest.mark.parametrize("b, s", SIZES)
@pytest.mark.parametrize("length", LENGTHS)
def test_truncate_matches_the_oracle_under_jit(b, s, length):
    batch = lm_batch(b, s)
    out = jax.jit(truncate_batch, static_argnums=1)(batch, length)
    for key, x in batch.items():
        want = np.stack([[x[i, j] for j in range(min(length, s))] for i in range(b)])
        np.testing.assert_array_equal(np.asarray(out[key]), want)
        assert out[key].dtype == x.dtype


@pytest.mark.parametrize("b, s", SIZES)
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("multiple", [1, 8])
def test_reshape_matches_the_spec_oracle_under_jit(b, s, length, multiple):
    batch = lm_batch(b, s, weights_dtype=np.bool_)
    out = jax.jit(reshape_batch, static_argnums=1, static_argnames="row_multiple")(
        batch, length, row_multiple=multiple)
    if length >= s:  # pass-through
        for key, x in batch.items():
            np.testing.assert_array_equal(np.asarray(out[key]), x)
        return
    kept, padded = reshaped_rows(b, s, length, multiple)
    assert kept == -(-b * s // length) and padded % multiple == 0 and padded - kept < multiple
    for key, x in batch.items():
        got = np.asarray(out[key])
        np.testing.assert_array_equal(got, reshape_oracle(x, length, multiple))
        assert got.dtype == x.dtype and got.shape == (padded, length)
    assert not np.asarray(out["weights"])[kept:].any()  # padding rows carry no loss
    # Inputs and targets stay aligned: targets are the inputs' next tokens in every row.
    inputs, targets = np.asarray(out["inputs"])[:kept], np.asarray(out["targets"])[:kept]
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


def test_reshape_keeps_about_the_same_number_of_tokens():
    batch = lm_batch(4, 100, padded=False)
    for length in (8, 30, 64, 99):
        rows = reshape_batch(batch, length)["inputs"].shape[0]
        assert rows == reshaped_rows(4, 100, length)[0]
        assert 4 * 100 <= rows * length < 4 * 100 + length


def test_eager_and_jitted_agree_and_other_rows_keys_follow():
    batch = lm_batch(3, 12)
    batch["positions"] = np.broadcast_to(np.arange(12, dtype=np.int32), (3, 12))
    eager = reshape_batch(batch, 5, row_multiple=2)
    jitted = jax.jit(reshape_batch, static_argnums=1, static_argnames="row_multiple")(
        batch, 5, row_multiple=2)
    for key in batch:
        np.testing.assert_array_equal(np.asarray(eager[key]), np.asarray(jitted[key]))
    np.testing.assert_array_equal(np.asarray(eager["positions"])[:2], [[0, 1, 2, 3, 4],
                                                                       [5, 6, 7, 8, 9]])


@pytest.mark.parametrize("mode", ["seqlen_truncate", "seqlen_reshape"])
def test_seqlen_op_shards_its_output_and_counts_real_tokens(mode):
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    batch = lm_batch(3, 10)
    out, real = seqlen_op(mode, 4, mesh=mesh, row_multiple=2)(batch)
    want = (truncate_batch(batch, 4) if mode == "seqlen_truncate"
            else reshape_batch(batch, 4, row_multiple=2))
    for key in batch:
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(want[key]))
        assert out[key].sharding == NamedSharding(mesh, P("batch"))
    assert int(real) == np.count_nonzero(np.asarray(want["weights"]))
    assert real.sharding == NamedSharding(mesh, P())
    assert int(count_weights(batch["weights"])) == np.count_nonzero(batch["weights"])
    with pytest.raises(ValueError, match="mode must be one of 'seqlen_truncate'"):
        seqlen_op("truncate", 4, mesh=mesh)


def test_bad_lengths_are_errors():
    batch = lm_batch(2, 8)
    with pytest.raises(ValueError, match="length must be an int >= 1, got 0"):
        truncate_batch(batch, 0)
    with pytest.raises(TypeError, match=r"length must be an int, got 2\.5 of type float"):
        reshape_batch(batch, 2.5)
    with pytest.raises(ValueError, match="row_multiple must be an int >= 1, got 0"):
        reshape_batch(batch, 2, row_multiple=0)


class FakeGraphsTuple(NamedTuple):  # the fields of jraph.GraphsTuple
    nodes: np.ndarray
    edges: np.ndarray
    receivers: np.ndarray
    senders: np.ndarray
    globals: np.ndarray
    n_node: np.ndarray
    n_edge: np.ndarray


B = 8
f32, i32 = np.float32, np.int32
ALGOPERF_BATCHES = {  # training batches as AlgoPerf v0.6's input pipelines build them
    "mnist": {"inputs": np.zeros((B, 28, 28, 1), f32), "targets": np.zeros(B, i32)},
    "cifar": {"inputs": np.zeros((B, 32, 32, 3), f32), "targets": np.zeros(B, i32),
              "weights": np.ones(B, f32)},
    "imagenet": {"inputs": np.zeros((B, 224, 224, 3), f32), "targets": np.zeros(B, i32)},
    "criteo1tb": {"inputs": np.zeros((B, 39), f32), "targets": np.zeros(B, f32),
                  "weights": np.ones(B, f32)},
    "fastmri": {"inputs": np.zeros((B, 320, 320), f32), "targets": np.zeros((B, 320, 320), f32),
                "mean": np.zeros(B, f32), "std": np.ones(B, f32),
                "volume_max": np.ones(B, f32), "weights": np.ones(B, f32)},
    "ogbg": {"inputs": FakeGraphsTuple(np.zeros((40, 9), f32), np.zeros((60, 3), f32),
                                       np.zeros(60, i32), np.zeros(60, i32),
                                       np.zeros((B, 128), f32), np.full(B, 5, i32),
                                       np.full(B, 7, i32)),
             "targets": np.zeros((B, 128), f32), "weights": np.ones((B, 128), bool)},
    "librispeech": {"inputs": (np.zeros((B, 320000), f32), np.zeros((B, 320000), f32)),
                    "targets": (np.zeros((B, 256), i32), np.zeros((B, 256), f32))},
    "wmt": {key: np.zeros((B, 256), i32) for key in
            ("inputs", "targets", "weights", "inputs_position", "inputs_segmentation",
             "targets_position", "targets_segmentation")},
}
REASONS = {
    "mnist": "no 'weights' in the batch",
    "cifar": "'inputs' is float32 (8, 32, 32, 3), not integer tokens [B, S]",
    "imagenet": "no 'weights' in the batch",
    "criteo1tb": "'inputs' is float32 (8, 39), not integer tokens [B, S]",
    "fastmri": "'inputs' is float32 (8, 320, 320), not integer tokens [B, S]",
    "ogbg": "'inputs' is a FakeGraphsTuple, not an array",
    "librispeech": "'inputs' is a tuple, not an array",
    "wmt": "['inputs_position', 'inputs_segmentation', 'targets_position', "
           "'targets_segmentation'] mark inputs and targets packed separately",
}


@pytest.mark.parametrize("workload", sorted(ALGOPERF_BATCHES))
def test_algoperf_batches_pass_through(workload):
    found = sequence_batch(ALGOPERF_BATCHES[workload])
    assert not found.acts
    assert found.reason.startswith(REASONS[workload]), found.reason
    assert found.batch_size is None and found.seq_len is None


def test_librispeech_with_weights_is_still_a_tuple_batch():
    batch = dict(ALGOPERF_BATCHES["librispeech"], weights=np.ones(B, f32))
    assert sequence_batch(batch).reason == "'inputs' is a tuple, not an array"


def test_language_model_batches_act():
    found = sequence_batch(lm_batch(4, 16))
    assert found == (True, "integer tokens [4, 16] with weights", 4, 16)
    on_device = jax.tree.map(jnp.asarray, lm_batch(4, 16, weights_dtype=np.bool_))
    assert sequence_batch(on_device).acts
    with_positions = dict(lm_batch(4, 16), positions=np.zeros((4, 16), i32))
    assert sequence_batch(with_positions).acts


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.pop("weights"), "no 'weights' in the batch"),
    (lambda b: b.update(inputs=b["inputs"].astype(f32)), "'inputs' is float32 (4, 16)"),
    (lambda b: b.update(targets=b["targets"][:, :8]),
     "'targets' has shape (4, 8), 'inputs' (4, 16): no shared sequence axis"),
    (lambda b: b.update(weights=np.ones(4, f32)), "'weights' has shape (4,)"),
    (lambda b: b.update(lengths=np.full(4, 16, i32)),
     "'lengths' is int32 (4,), not a [4, 16] array that can be cut with the tokens"),
    (lambda b: b.update(inputs_segmentation=np.ones((4, 16), i32)),
     "['inputs_segmentation'] mark inputs and targets packed separately"),
])
def test_anything_else_passes_with_its_reason(change, reason):
    batch = lm_batch(4, 16)
    change(batch)
    found = sequence_batch(batch)
    assert not found.acts and found.reason.startswith(reason), found.reason


def test_non_dict_batches_pass():
    assert sequence_batch(np.zeros((4, 16), i32)).reason == "a ndarray, not a dict of arrays"
    assert sequence_batch(None).reason == "a NoneType, not a dict of arrays"
