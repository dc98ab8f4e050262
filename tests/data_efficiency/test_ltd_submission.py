"""submissions/data_efficient_lm end to end on our runner (short), and its API pieces."""

import importlib.util
import itertools
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBMISSION = ROOT / "submissions" / "data_efficient_lm" / "submission.py"


def load():
    spec = importlib.util.spec_from_file_location("_submission_data_efficient_lm", SUBMISSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_sizes():
    module = load()
    assert module.get_batch_size("stdlib_lm_4x256") == 32
    with pytest.raises(ValueError, match="no batch size for workload 'digits'"):
        module.get_batch_size("digits")


def test_runs_on_the_runner(tmp_path, capsys):
    from algoperf_reinit.runner import main

    kwargs = {"width": 16, "mlp_dim": 32, "num_eval_train_examples": 8}
    code = main([f"--experiment_dir={tmp_path}", "--experiment_name=e2e",
                 "--workload=stdlib_lm_4x256", f"--submission_path={SUBMISSION}",
                 "--tuning_ruleset=self", "--max_global_steps=3", "--eval_every_steps=100",
                 "--rng_seed=1", "--progress=none", f"--workload_kwargs={json.dumps(kwargs)}"])
    assert code == 0, capsys.readouterr()
    trial = tmp_path / "e2e" / "stdlib_lm_4x256_jax" / "trial_1"
    summary = json.loads((trial / "summary.json").read_text())
    assert summary["global_steps"] == 3
    assert summary["compilations"]["by_function"]["jit(train_step)"] == 1  # one kept length
    assert summary["final_eval"]["validation/loss"] > 0
    ltd = json.loads((trial / "random_ltd_summary.json").read_text())
    # Steps 0-2: curriculum length 64, kept length 64 (no dropping at that length).
    assert ltd["shapes"]["per_shape"] == {"64x64": {"steps": 3, "compilations": 1}}
    assert ltd["shapes"]["within_bound"] and ltd["shapes"]["bound"] == 8
    assert ltd["layer_tokens"] == 3 * 32 * 64 * 4  # what ran: 64 tokens through 4 layers
    # DeepSpeed's count: scheduled kept length 64 in layers 1, 2, max_value 256 in 0, 3
    assert ltd["deepspeed_consumed_layer_tokens"] == 3 * 32 * (64 * 2 + 256 * 2)
    # Each eval's row of tokens.csv: tokens trained on (length 64), layer tokens.
    rows = (trial / "tokens.csv").read_text().splitlines()
    assert rows[0] == "global_step,tokens,layer_tokens,deepspeed_consumed_layer_tokens"
    assert rows[-1] == f"3,{3 * 32 * 64},{3 * 32 * 64 * 4},{3 * 32 * (64 * 2 + 256 * 2)}"
    # The batches came from the vocabulary-rarity sampler (its state is checkpointed).
    from algoperf_reinit.runner import SAMPLE_SOURCE_KEY
    from algoperf_reinit.runner.checkpoint import find_checkpoints, load_checkpoint

    _, latest = find_checkpoints(trial)[-1]
    state = load_checkpoint(latest).meta[SAMPLE_SOURCE_KEY]
    assert state["batches"] == 3 and state["sampler"]["curriculum_step"] == 3
    assert state["sampler"]["current_difficulties"]["vocabularyrarity"] == 40


def test_joint_schedule_of_the_config():
    from algoperf_reinit_workloads import StdlibLM4x256Workload

    module = load()
    host_shapes = module._schedules(StdlibLM4x256Workload(num_eval_train_examples=8))
    _, _, starts, shapes, bound = host_shapes
    assert bound == len(set(shapes)) == 8  # 25 (length, kept) pairs in one bound of 8
    assert starts[0] == 0 and shapes[0] == (64, 64) and shapes[-1] == (256, 256)
    assert all(k <= s for s, k in shapes)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(shapes))


def tiny_workload():
    from algoperf_reinit_workloads import StdlibLM4x256Workload

    return StdlibLM4x256Workload(width=16, mlp_dim=32, num_eval_train_examples=8)


def test_the_configs_layer_token_budget_is_the_schedules():
    from algoperf_reinit_workloads import StdlibLM4x256Workload

    module = load()
    workload = StdlibLM4x256Workload(num_eval_train_examples=8)
    block = json.loads(module.CONFIG_PATH.read_text())["data_efficiency"]["data_routing"][
        "random_ltd"]["layer_token_lr_schedule"]
    assert block["enabled"]
    planned = module.planned_layer_tokens(workload, workload.step_hint)
    assert block["total_layer_tokens"] == planned
    dense = workload.step_hint * 32 * 256 * 4
    assert 0.5 * dense < planned < dense  # shorter sequences, dropped tokens
    assert block["warmup_layer_tokens"] == int(0.05 * planned)


def test_the_sample_source_draws_the_least_rare_windows_first():
    import jax
    import numpy as np

    from algoperf_reinit.data_efficiency import total_vocab_freq_metric, vocab_rarity_metric

    module = load()
    workload = tiny_workload()
    windows = workload.training_dataset()[:]
    counts = total_vocab_freq_metric(256, tokens_key="inputs")(windows)
    rarity = vocab_rarity_metric(counts, tokens_key="inputs")(windows)
    first = {}
    for seed in (0, 0, 1):
        source = module.sample_source(workload, 32, jax.random.PRNGKey(seed))
        batch = next(source)
        assert source.sampler.current_difficulties["vocabularyrarity"] == 40
        rows = np.asarray(batch["inputs"])
        ids = [int(np.flatnonzero((windows["inputs"] == row).all(axis=1))[0]) for row in rows]
        # The 40% least rare windows only (min_difficulty 40, percentile).
        assert rarity[ids].max() <= np.sort(rarity)[int(0.40 * len(rarity))]
        first.setdefault(seed, []).append(ids)
    assert first[0][0] == first[0][1]  # the same data key, the same order
    assert first[0][0] != first[1][0]  # another key, another order


def test_label_smoothing_dropout_and_grad_clip_reach_the_step():
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from algoperf_reinit.data_efficiency import (
        block_factory_from_config,
        parse_data_efficiency_config,
    )

    module = load()
    workload = tiny_workload()
    params, _ = workload.init_model_fn(jax.random.PRNGKey(0))
    tx = optax.sgd(1.0)
    factory = block_factory_from_config(
        parse_data_efficiency_config(module.CONFIG_PATH).data_routing.random_ltd)
    step = module._train_step(workload, tx, factory)
    batch = {k: jnp.asarray(v) for k, v in workload.train_examples(np.arange(4)).items()}
    batch = module.truncate_batch(batch, 64)

    def after(label_smoothing, dropout_rate, grad_clip):
        p = jax.tree.map(jnp.array, params)
        new, _ = step(p, tx.init(p), batch, jax.random.PRNGKey(1), np.float32(label_smoothing),
                      np.float32(dropout_rate), np.float32(grad_clip), 32)
        return np.concatenate([np.ravel(x) for x in jax.tree.leaves(new)])

    plain = after(0.0, 0.0, 0.0)
    np.testing.assert_array_equal(after(0.0, 0.0, 0.0), plain)  # deterministic
    for changed in (after(0.1, 0.0, 0.0), after(0.0, 0.5, 0.0), after(0.0, 0.0, 1e-3)):
        assert not np.allclose(changed, plain)
    start = np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])
    # Clipped to global norm 1e-3 with SGD at lr 1: the whole update has that norm.
    assert np.linalg.norm(after(0.0, 0.0, 1e-3) - start) == pytest.approx(1e-3, rel=1e-3)
    assert step._cache_size() == 1  # the three are traced: one compilation for all


def test_a_resumed_run_continues_its_counters_and_its_learning_rate_clock(tmp_path,
                                                                          monkeypatch):
    """What the runner does on resume: element 0 restored, a fresh host from init."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    monkeypatch.chdir(tmp_path)  # the run directory, outside a runner, is relative
    module = load()
    workload = tiny_workload()
    params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
    batch = {k: jnp.asarray(v) for k, v in workload.train_examples(np.arange(32)).items()}
    batch = module.truncate_batch(batch, 64)  # steps 0-5: curriculum length 64

    def steps(state, p, start, stop):
        copy = functools.partial(jax.tree.map, jnp.copy)  # the step donates its inputs
        state, p = (copy(state[0]), state[1]), copy(p)
        for g in range(start, stop):
            state, p, _ = module.update_params(
                workload, p, None, model_state, None, batch, None, state, [], g,
                jax.random.fold_in(jax.random.PRNGKey(1), g))
        return state, p

    def init(step_of=None):  # one jitted step for all (compiles once)
        state = module.init_optimizer_state(workload, params, model_state, None,
                                            jax.random.PRNGKey(2))
        return state if step_of is None else (
            state[0], state[1]._replace(train_step=step_of[1].train_step))

    whole, p_whole = steps(init(), params, 0, 6)
    first, p_first = steps(init(whole), params, 0, 3)
    resumed, p_resumed = steps((first[0], init(whole)[1]), p_first, 3, 6)
    for a, b in zip(jax.tree.leaves(p_whole), jax.tree.leaves(p_resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    s_whole, s_resumed = module.summary(whole), module.summary(resumed)
    assert s_resumed["layer_tokens"] == s_whole["layer_tokens"] == 6 * 32 * 64 * 4
    assert s_resumed["deepspeed_consumed_layer_tokens"] == s_whole[
        "deepspeed_consumed_layer_tokens"] == 6 * 32 * (64 * 2 + 256 * 2)
    assert s_resumed["shapes"]["per_shape"]["64x64"]["steps"] == 6
    # A fresh host that counted nothing would have restarted the LR clock at 0.
    stale, p_stale = steps((first[0], init(whole)[1]), p_first, 3, 4)
    assert module.summary(stale)["layer_tokens"] == 4 * 32 * 64 * 4
    with pytest.raises(ValueError, match=r"batch shape \(32, 32\) at step 4, expected "
                       r"\(32, 64\)"):
        module.update_params(workload, p_stale, None, model_state, None,
                             module.truncate_batch(batch, 32), None, stale, [], 4,
                             jax.random.PRNGKey(3))
