"""What a submission compiles on the clock, divergence, and hyperparameter reports, driven
the way AlgoPerf's loop drives a submission (timed update_params, untimed evals)."""

import importlib.util
import json
import pathlib
import warnings

import jax
import numpy as np
import pytest
from algoperf_reinit_workloads import get_workload

from algoperf_reinit.runner import CompileCounter

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(name):
    path = ROOT / "submissions" / name / "submission.py"
    spec = importlib.util.spec_from_file_location(f"_clock_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(module, hp, steps, tmp_path, monkeypatch, *, eval_every=10, loss=lambda s: 1.0):
    """Step 0 is the warm-up; later update_params calls are timed; evals (a given
    validation loss: flat by default, so the plateau detector fires) are untimed."""
    monkeypatch.setenv("ALGOPERF_REINIT_RUN_DIR", str(tmp_path))
    workload = get_workload("digits", hidden_sizes=(16,))
    data_rng, opt_rng, model_rng, rng = jax.random.split(jax.random.PRNGKey(0), 4)
    queue = workload._build_input_queue(data_rng, "train", None, 32)
    params, model_state = workload.init_model_fn(model_rng)
    eval_results, stopped = [], None
    with CompileCounter() as counter:
        opt = module.init_optimizer_state(workload, params, model_state, hp, opt_rng)
        for step in range(steps):
            batch = next(queue)  # the bundled queue's own compiles are not the submission's
            with counter.timed(warmup=step == 0):
                try:
                    opt, params, model_state = module.update_params(
                        workload=workload, current_param_container=params,
                        current_params_types=None, model_state=model_state,
                        hyperparameters=hp, batch=batch, loss_type=None,
                        optimizer_state=opt, eval_results=eval_results, global_step=step,
                        rng=jax.random.fold_in(rng, step))
                except Exception as e:
                    if type(e).__name__ != "TrainingCompleteError":
                        raise
                    stopped = (step, str(e))
                    break
            if (step + 1) % eval_every == 0:
                eval_results.append((step + 1, {"validation/loss": loss(step + 1),
                                                "validation/accuracy": 0.5}))
    rows = (tmp_path / "events.csv").read_text().splitlines()[1:]
    return opt, counter.summary(), [r.split(",")[2] for r in rows], stopped


def test_resets_and_early_stops_compile_at_most_two_functions_after_warmup(
        tmp_path, monkeypatch):
    module = load("nadamw_reinit")
    hp = {"learning_rate": 3e-3, "budget_fraction": 0.15}  # 300 of digits' 2000 steps
    (state, stepper), summary, kinds, _ = run(module, hp, 300, tmp_path, monkeypatch)
    assert kinds.count("early_stop") >= 1 and int(state.reinit.num_early_stops) >= 1
    assert kinds.count("reset") >= 2 and int(state.reinit.num_resets) >= 2
    assert summary["timed_after_warmup"] <= 2, summary["functions_after_warmup"]
    assert set(summary["functions_after_warmup"]) <= {"jit(reset)", "jit(update_plateau)"}
    assert stepper.train_step._cache_size() == 1 and stepper.reset_fn._cache_size() == 1


def test_a_diverged_run_warns_once_and_ends_with_training_complete(tmp_path, monkeypatch):
    module = load("nadamw_cycles")
    with pytest.warns(RuntimeWarning, match=r"nadamw_cycles: the training loss or gradient "
                                            r"norm is not finite by step \d+ \(learning_rate="
                                            r"1000.0\): ending the trial") as caught:
        _, _, kinds, stopped = run(module, {"learning_rate": 1e3}, 200, tmp_path, monkeypatch)
    assert len([w for w in caught if w.category is RuntimeWarning]) == 1
    assert stopped is not None and "training diverged" in stopped[1]
    assert stopped[0] % 10 == 0 and stopped[0] < 200  # read at the eval/log cadence
    assert kinds.count("non_finite") == 1


def test_on_non_finite_continue_keeps_going_and_never_resets_on_nan(tmp_path, monkeypatch):
    import dataclasses

    from algoperf_reinit.submission import submission_api

    base = load("nadamw_reinit").CONFIG
    config = dataclasses.replace(base, on_non_finite="continue", plot=False)
    module = type("M", (), {})()
    for fname, fn in submission_api(config, lambda *_: tmp_path)._asdict().items():
        setattr(module, fname, fn)
    monkeypatch.setenv("ALGOPERF_REINIT_RUN_DIR", str(tmp_path))
    hp = {"learning_rate": 1e3, "budget_fraction": 0.1}  # 200 steps, resets at 50, 120
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (state, _), _, kinds, stopped = run(module, hp, 200, tmp_path, monkeypatch)
    assert stopped is None and kinds.count("non_finite") == 1
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)
                and "not finite" in str(w.message)]) == 1
    assert kinds.count("reset") == 0 and kinds.count("reset_skipped") == 2
    assert int(state.reinit.num_resets) == 0


def test_unknown_and_defaulted_hyperparameters_are_reported(tmp_path, monkeypatch, capsys):
    module = load("nadamw_baseline")
    hp = {"learning_rate": 2e-3, "typo_param": 1.0, "weight_decy": 0.1}
    with pytest.warns(UserWarning) as caught:
        run(module, hp, 2, tmp_path, monkeypatch)
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert any("hyperparameter 'weight_decy' is not read by nadamw_baseline: the closest "
               "name it reads is 'weight_decay'" in m for m in messages)
    assert any("'typo_param' is not read by nadamw_baseline: the closest name it reads is"
               in m for m in messages)
    out = capsys.readouterr().out
    assert out.count("nadamw_baseline: hyperparameters that fell back to defaults: "
                     "one_minus_beta1=0.1, beta2=0.999, weight_decay=0.08") == 1
    saved = json.loads((tmp_path / "hparams_resolved.json").read_text())
    assert saved["given"] == {"learning_rate": 2e-3}
    assert saved["defaulted"]["weight_decay"] == 0.08
    assert saved["unknown"] == {"typo_param": saved["unknown"]["typo_param"],
                                "weight_decy": "weight_decay"}
    assert "learning_rate" not in saved["defaulted"]


@pytest.mark.parametrize("hp, match", [
    ({"learning_rate": "fast"},
     "hyperparameter learning_rate must be a real number, got 'fast' of type str"),
])
def test_a_string_hyperparameter_is_a_clear_error(hp, match, tmp_path, monkeypatch):
    module = load("nadamw_baseline")
    with pytest.raises(TypeError, match=match):
        run(module, hp, 1, tmp_path, monkeypatch)
    assert not np.any([p.name == "events.csv" for p in tmp_path.iterdir()])
