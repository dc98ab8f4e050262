"""Each submission driven exactly as AlgoPerf v0.6's submission_runner drives it.

ALGOPERF_API.md §3.2: positional ``init_optimizer_state``, keyword ``update_params``
and ``prepare_for_eval``, ``train_state`` only when the signature names it, the
optimizer state unpacked as ``(opt_state, opt_update_fn)`` with element 0
round-tripped through flax serialization (the harness's checkpoint), per-step
``fold_in`` keys, ``eval_results`` as ``(global_step, dict)``.
"""

import importlib.util
import inspect
import pathlib
import types

import flax.serialization
import jax
import numpy as np
import pytest
from algoperf_reinit_workloads import get_workload

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = ["nadamw_baseline", "nadamw_cycles", "nadamw_reinit"]
API = {
    "get_batch_size": ["workload_name"],
    "init_optimizer_state": ["workload", "model_params", "model_state", "hyperparameters",
                             "rng"],
    "update_params": ["workload", "current_param_container", "current_params_types",
                      "model_state", "hyperparameters", "batch", "loss_type",
                      "optimizer_state", "eval_results", "global_step", "rng", "train_state"],
    "prepare_for_eval": ["workload", "current_param_container", "current_params_types",
                         "model_state", "hyperparameters", "loss_type", "optimizer_state",
                         "eval_results", "global_step", "rng"],
    "data_selection": ["workload", "input_queue", "optimizer_state", "current_param_container",
                       "model_state", "hyperparameters", "global_step", "rng"],
}


def load(name):
    path = ROOT / "submissions" / name / "submission.py"
    spec = importlib.util.spec_from_file_location(f"_submission_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_signatures_are_the_api(name):
    module = load(name)
    for function, params in API.items():
        assert list(inspect.signature(getattr(module, function)).parameters) == params
    with pytest.raises(ValueError, match="no batch size for workload 'no_such_workload'"):
        module.get_batch_size("no_such_workload")
    assert module.get_batch_size("digits") % jax.local_device_count() == 0


@pytest.mark.parametrize("name", NAMES)
def test_search_space_is_valid_json(name):
    import json

    space = json.loads((ROOT / "submissions" / name / "tuning_search_space.json").read_text())
    assert space and "learning_rate" in (space if isinstance(space, dict) else space[0])
    assert (ROOT / "submissions" / name / "README.md").exists()


def drive(module, num_steps, eval_every, tmp_path, monkeypatch, hyperparameters=None):
    """The runner's train_once, condensed (no timing)."""
    monkeypatch.setenv("ALGOPERF_REINIT_RUN_DIR", str(tmp_path))
    workload = get_workload("digits", hidden_sizes=(32,))
    rng = jax.random.PRNGKey(0)
    data_rng, opt_init_rng, model_init_rng, rng = jax.random.split(rng, 4)
    batch_size = module.get_batch_size("digits")
    queue = workload._build_input_queue(data_rng, "train", None, batch_size)
    params, model_state = workload.init_model_fn(model_init_rng)
    optimizer_state = module.init_optimizer_state(workload, params, model_state,
                                                  hyperparameters, opt_init_rng)
    eval_results, losses = [], []
    takes_train_state = "train_state" in inspect.signature(module.update_params).parameters
    for global_step in range(num_steps):
        step_rng = jax.random.fold_in(rng, global_step)
        select_rng, update_rng, prep_rng, _ = jax.random.split(step_rng, 4)
        batch = module.data_selection(workload, queue, optimizer_state, params, model_state,
                                      hyperparameters, global_step, select_rng)
        kwargs = dict(workload=workload, current_param_container=params,
                      current_params_types=workload.model_params_types,
                      model_state=model_state, hyperparameters=hyperparameters, batch=batch,
                      loss_type=workload.loss_type, optimizer_state=optimizer_state,
                      eval_results=eval_results, global_step=global_step, rng=update_rng)
        if takes_train_state:
            kwargs["train_state"] = types.MappingProxyType({"is_time_remaining": True})
        optimizer_state, params, model_state = module.update_params(**kwargs)
        if (global_step + 1) % eval_every == 0:
            optimizer_state, params, model_state = module.prepare_for_eval(
                workload=workload, current_param_container=params,
                current_params_types=workload.model_params_types, model_state=model_state,
                hyperparameters=hyperparameters, loss_type=workload.loss_type,
                optimizer_state=optimizer_state, eval_results=eval_results,
                global_step=global_step + 1, rng=prep_rng)
            metrics = workload.eval_model(512, params, model_state, rng, None, None,
                                          global_step + 1)
            eval_results.append((global_step + 1, metrics))
            losses.append(metrics["validation/loss"])
            # The harness's checkpoint: element 0 through flax serialization and back.
            opt_state, opt_update_fn = optimizer_state
            restored = flax.serialization.from_bytes(opt_state,
                                                     flax.serialization.to_bytes(opt_state))
            jax.tree.map(np.testing.assert_array_equal, restored, opt_state)
            assert callable(opt_update_fn)
    return optimizer_state, params, eval_results, losses


@pytest.mark.parametrize("name", NAMES)
def test_a_short_run_learns_and_compiles_the_step_once(name, tmp_path, monkeypatch):
    module = load(name)
    optimizer_state, _, _, losses = drive(module, 120, 20, tmp_path, monkeypatch)
    assert losses[-1] < losses[0]
    stepper = optimizer_state[1]
    assert stepper.train_step._cache_size() == 1
    assert (tmp_path / "lr_schedule.png").stat().st_size > 0
    header = (tmp_path / "events.csv").read_text().splitlines()[0]
    assert header == "global_step,cycle,kind,reason,metrics,old_boundaries,new_boundaries"


def test_reinit_submission_resets_at_boundaries_without_recompiling(tmp_path, monkeypatch):
    module = load("nadamw_reinit")
    hp = {"learning_rate": 3e-3, "budget_fraction": 0.15}  # 300 of digits' 2000 steps
    optimizer_state, _, _, _ = drive(module, 300, 10, tmp_path, monkeypatch, hp)
    state, stepper = optimizer_state
    rows = (tmp_path / "events.csv").read_text().splitlines()[1:]
    kinds = [row.split(",")[2] for row in rows]
    assert kinds.count("reset") == 2 == int(state.reinit.num_resets)
    assert stepper.train_step._cache_size() == 1


def test_self_tuning_uses_the_documented_defaults(tmp_path, monkeypatch):
    module = load("nadamw_baseline")
    optimizer_state, _, _, losses = drive(module, 40, 20, tmp_path, monkeypatch, None)
    assert optimizer_state[1].hparams.learning_rate == pytest.approx(1.7e-3)
    assert losses[-1] < losses[0]
