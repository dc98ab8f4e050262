"""StdlibLMWorkload: pinned corpus, windows, the Workload contract, causality, training."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from algoperf_reinit_workloads import WORKLOADS, ForwardPassMode, ParameterType, StdlibLMWorkload
from algoperf_reinit_workloads.stdlib_lm import load_stdlib_corpus
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

TINY = dict(seq_len=16, width=16, num_layers=2, num_heads=2, mlp_dim=32, num_eval_train_examples=64,
            eval_batch_size=64)


@pytest.fixture(scope="module")
def workload():
    return StdlibLMWorkload(**TINY)


@pytest.fixture(scope="module")
def init(workload):
    return workload.init_model_fn(jax.random.PRNGKey(0))


def _tiny_stdlib(tmp_path, names=("a.py", "b.py", "c.py", "d.py")):
    root = tmp_path / "lib"
    root.mkdir()
    for i, name in enumerate(names):
        (root / name).write_bytes(f"x = {i}\nprint(x * {i})\n".encode() * 8)
    file_list = tmp_path / "files.json"
    file_list.write_text(
        json.dumps({"version": 7, "train": ["a.py", "b.py"], "validation": ["c.py"], "test": ["d.py"]})
    )
    return root, file_list


# ----------------------------------------------------------------------------- corpus


def test_pinned_file_list_resolves_on_this_python():
    corpus = load_stdlib_corpus()
    assert corpus.missing == ()
    assert {k: len(v) for k, v in corpus.files.items()} == {"train": 60, "validation": 8, "test": 8}
    every = [f for files in corpus.files.values() for f in files]
    assert len(every) == len(set(every))
    for split, data in corpus.splits.items():
        assert data.dtype == np.uint8 and data.size > 40_000, split
        assert int((data == 0).sum()) == len(corpus.files[split])  # one separator per file


def test_corpus_hash_is_stable_across_loads(workload):
    a, b = load_stdlib_corpus(), load_stdlib_corpus()
    assert a.sha256 == b.sha256 and a.split_sha256 == b.split_sha256
    assert len(a.sha256) == 64
    meta = workload.metadata()
    json.dumps(meta)
    assert meta["corpus_sha256"] == a.sha256
    assert meta["missing_files"] == [] and meta["train_files"] == 60
    assert meta["seq_len"] == TINY["seq_len"]


def test_missing_files_fail_clearly_or_are_recorded(tmp_path):
    root, file_list = _tiny_stdlib(tmp_path)
    (root / "b.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing.*b\.py.*missing='skip'"):
        load_stdlib_corpus(root, file_list)
    corpus = load_stdlib_corpus(root, file_list, missing="skip")
    assert corpus.missing == ("b.py",) and corpus.files["train"] == ("a.py",)
    assert corpus.file_list_version == 7
    w = StdlibLMWorkload(**TINY, stdlib_dir=root, file_list=file_list, missing="skip")
    assert w.metadata()["missing_files"] == ["b.py"]
    (root / "c.py").unlink()
    with pytest.raises(FileNotFoundError, match="validation"):
        load_stdlib_corpus(root, file_list, missing="skip")
    with pytest.raises(ValueError, match="missing must be"):
        load_stdlib_corpus(root, file_list, missing="ignore")


# ----------------------------------------------------------------------------- windows


def test_train_windows_are_shifted_corpus_slices(workload):
    corpus = workload.corpus.splits["train"]
    indices = np.array([0, 5, workload.num_train_examples - 1])
    batch = workload.train_examples(indices)
    length = TINY["seq_len"]
    for row, i in enumerate(indices):
        window = corpus[i * length : i * length + length + 1]
        np.testing.assert_array_equal(batch["inputs"][row], window[:-1])
        np.testing.assert_array_equal(batch["targets"][row], window[1:])
    assert workload.num_train_examples == (len(corpus) - 1) // length


def test_eval_windows_predict_every_byte_once(workload):
    for split in ("validation", "test"):
        arrays = workload._eval_arrays(split)
        corpus = workload.corpus.splits[split]
        assert len(arrays["inputs"]) == workload.num_examples(split)
        assert arrays["weights"].sum() == len(corpus) - 1
        predicted = arrays["targets"][arrays["weights"] > 0]
        np.testing.assert_array_equal(predicted, corpus[1:])


# ----------------------------------------------------------------------------- contract


def test_interface_members(workload, init):
    _, model_state = init
    w = workload
    assert model_state == {}
    assert w.target_metric_name == "loss" and w.target_metric_lower_is_better
    assert w.has_reached_validation_target({"validation/loss": w.validation_target_value})
    assert not w.has_reached_validation_target({"validation/loss": w.validation_target_value + 0.1})
    assert w.has_reached_test_target({"test/loss": 0.0})
    assert w.metrics_logger is None
    for name in ("validation_target_value", "test_target_value", "eval_period_time_sec"):
        assert isinstance(getattr(w, name), float)
    for name in ("step_hint", "max_allowed_runtime_sec", "num_train_examples",
                 "num_eval_train_examples", "num_validation_examples", "num_test_examples",
                 "eval_batch_size"):
        assert isinstance(getattr(w, name), int) and getattr(w, name) > 0, name
    assert WORKLOADS["stdlib_lm"] is StdlibLMWorkload
    assert w.is_output_params("output") and not w.is_output_params("token_embed")
    with pytest.raises(ValueError, match="init_model_fn"):
        StdlibLMWorkload(**TINY).param_shapes  # noqa: B018


def test_param_types_and_layer_structure(workload, init):
    params, _ = init
    types = workload.model_params_types
    shapes = workload.param_shapes
    assert jax.tree.structure(types) == jax.tree.structure(params)
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    assert [k for k in params if k.startswith("layers_")] == ["layers_0", "layers_1"]
    layer = types["layers_1"]
    assert layer["attention"]["query"]["kernel"] is ParameterType.ATTENTION_Q
    assert layer["attention"]["key"]["kernel"] is ParameterType.ATTENTION_K
    assert layer["attention"]["value"]["kernel"] is ParameterType.ATTENTION_V
    assert layer["attention"]["out"]["kernel"] is ParameterType.ATTENTION_OUT
    assert layer["attention"]["out"]["bias"] is ParameterType.ATTENTION_BIAS
    assert layer["ln_attention"]["scale"] is ParameterType.LAYER_NORM_SCALE
    assert layer["ln_mlp"]["bias"] is ParameterType.LAYER_NORM_BIAS
    assert layer["mlp_in"] == {"kernel": ParameterType.WEIGHT, "bias": ParameterType.BIAS}
    assert types["token_embed"]["embedding"] is ParameterType.EMBEDDING
    assert types["pos_embed"]["embedding"] is ParameterType.EMBEDDING
    assert shapes["pos_embed"]["embedding"].shape_tuple == (TINY["seq_len"], TINY["width"])


def test_model_is_causal_and_accepts_shorter_sequences(workload, init):
    params, state = init
    forward = jax.jit(workload.model_fn, static_argnums=(3, 5))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 16)), jnp.int32)
    logits, _ = forward(params, {"inputs": tokens}, state, ForwardPassMode.EVAL, None, False)
    assert logits.shape == (2, 16, 256)
    changed = tokens.at[:, 10:].set(7)
    logits2, _ = forward(params, {"inputs": changed}, state, ForwardPassMode.EVAL, None, False)
    np.testing.assert_allclose(logits2[:, :10], logits[:, :10], rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits2[:, 10:], logits[:, 10:])
    short, _ = forward(params, {"inputs": tokens[:, :8]}, state, ForwardPassMode.EVAL, None, False)
    np.testing.assert_allclose(short, logits[:, :8], rtol=1e-5, atol=1e-5)
    # A subset of tokens with explicit positions sees exactly its own causal context.
    keep = jnp.asarray([[0, 2, 5, 9]] * 2, jnp.int32)
    subset = {"inputs": jnp.take_along_axis(tokens, keep, axis=1), "positions": keep}
    sub_logits, _ = forward(params, subset, state, ForwardPassMode.EVAL, None, False)
    assert sub_logits.shape == (2, 4, 256)
    np.testing.assert_allclose(sub_logits[:, 0], logits[:, 0], rtol=1e-5, atol=1e-5)


def test_dropout_applies_in_train_mode_only(workload, init):
    params, state = init
    batch = workload.train_batch(jax.random.PRNGKey(0), 0, 4)
    forward = jax.jit(workload.model_fn, static_argnums=(3, 5))
    rng = jax.random.PRNGKey(1)
    clean, _ = forward(params, batch, state, ForwardPassMode.TRAIN, rng, False)
    dropped, _ = forward(params, batch, state, ForwardPassMode.TRAIN, rng, False, dropout_rate=0.3)
    evaluated, _ = forward(params, batch, state, ForwardPassMode.EVAL, rng, False, dropout_rate=0.3)
    assert not np.allclose(clean, dropped)
    np.testing.assert_allclose(evaluated, clean, rtol=1e-5, atol=1e-5)


def test_loss_fn_ignores_masked_tokens(workload):
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.standard_normal((2, 5, 256)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 256, (2, 5)), jnp.int32)
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
    out = jax.jit(workload.loss_fn)(labels, logits.at[0, 3:].set(jnp.inf), mask)
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    assert float(out["n_valid_examples"]) == 8.0
    np.testing.assert_allclose(out["summed"], (per_token * mask).sum(), rtol=1e-5)
    assert out["per_example"].shape == (2, 5)
    np.testing.assert_array_equal(out["per_example"][0, 3:], 0.0)


# ----------------------------------------------------------------------------- data stream


def test_train_stream_is_step_indexed_and_sharded(workload):
    rng = jax.random.PRNGKey(5)
    a = workload.train_batch(rng, 3, 8)
    b = workload.train_batch(rng, 3, 8)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    queue = workload._build_input_queue(rng, "train", None, 8)
    head = [next(queue) for _ in range(6)]
    resumed = workload._build_input_queue(rng, "train", None, 8, start_step=4)
    for expected in head[4:]:
        got = next(resumed)
        for key in ("inputs", "targets", "weights"):
            np.testing.assert_array_equal(got[key], expected[key])
    for key, value in a.items():
        assert isinstance(value.sharding, NamedSharding) and value.sharding.spec == P("batch")
        assert value.shape == (8, TINY["seq_len"]), key
    assert a["inputs"].dtype == jnp.int32 and a["weights"].dtype == jnp.float32
    limited = list(workload._build_input_queue(rng, "train", None, 8, num_batches=3))
    assert len(limited) == 3


# ----------------------------------------------------------------------------- eval + training


def test_eval_keys_counts_and_single_compile(init):
    w = StdlibLMWorkload(**TINY)
    params, state = init
    result = w.eval_model(w.eval_batch_size, params, state, None, None, None, 0)
    assert set(result) == {
        "train/accuracy", "train/loss", "validation/accuracy", "validation/loss",
        "validation/num_examples", "test/accuracy", "test/loss", "test/num_examples",
    }
    assert result["validation/num_examples"] == w.num_validation_examples
    assert result["test/num_examples"] == w.num_test_examples
    assert 4.0 < result["validation/loss"] < 7.0  # ~log(256) = 5.55 at init
    again = w.eval_model(w.eval_batch_size, params, state, None, None, None, 1)
    assert again == result and w._num_eval_traces == 1


def test_short_training_reduces_the_loss(workload):
    params, state = workload.init_model_fn(jax.random.PRNGKey(1))
    tx = optax.adam(3e-3)
    opt = tx.init(params)
    params, opt = workload.replicate((params, opt))

    @jax.jit
    def step(params, opt, batch):
        def loss_fn(p):
            logits, _ = workload.model_fn(p, batch, state, ForwardPassMode.TRAIN, None, False)
            out = workload.loss_fn(batch["targets"], logits, batch["weights"])
            return out["summed"] / out["n_valid_examples"]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    rng = jax.random.PRNGKey(2)
    losses = []
    for i in range(40):
        params, opt, loss = step(params, opt, workload.train_batch(rng, i, 16))
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < losses[0] - 1.0
