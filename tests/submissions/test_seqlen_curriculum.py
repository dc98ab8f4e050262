"""nadamw_seqlen_curriculum: the API, pass-through on digits, one compile per length on stdlib_lm.

Driven as AlgoPerf's runner drives a submission (``test_contract.drive`` for digits; a
condensed loop here for ``stdlib_lm`` with a tiny model).
"""

import inspect
import json
import math

import jax
import pytest
from algoperf_reinit_workloads import get_workload

from algoperf_reinit.data_efficiency import SEQLEN_REPORT_FILE, SeqlenSelection
from algoperf_reinit.submission import SubmissionConfig, curriculum_submission_api
from tests.submissions.test_contract import API, ROOT, drive, load

NAME = "nadamw_seqlen_curriculum"
TINY = {"seq_len": 32, "width": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64}


def test_signatures_files_and_config_beside_it():
    module = load(NAME)
    for function, params in API.items():
        assert list(inspect.signature(getattr(module, function)).parameters) == params
    folder = ROOT / "submissions" / NAME
    space = json.loads((folder / "tuning_search_space.json").read_text())
    assert "learning_rate" in space and (folder / "README.md").exists()
    metric = module.CURRICULUM.config.data_sampling.curriculum_learning.curriculum_metrics
    assert list(metric) == ["seqlen_truncate"]
    names = [a.name for a in module.run_artifacts()]
    assert SEQLEN_REPORT_FILE in names and "events.csv" in names


def test_digits_batches_pass_through_and_the_step_compiles_once(tmp_path, monkeypatch):
    module = load(NAME)
    optimizer_state, _, _, losses = drive(module, 40, 20, tmp_path, monkeypatch)
    assert losses[-1] < losses[0]
    assert optimizer_state[1].train_step._cache_size() == 1
    report = json.loads((tmp_path / SEQLEN_REPORT_FILE).read_text())
    assert report["passed_batches"] == 40 and report["passed_batch_compilations"] == 1
    assert report["lengths"]["steps"] == 0 and report["lengths"]["per_shape"] == {}


def _selection(total_step):
    return SeqlenSelection({"data_sampling": {"curriculum_learning": {
        "enabled": True, "curriculum_metrics": {"seqlen_truncate": {
            "difficulty_type": "value", "clustering_type": "single_cluster",
            "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": total_step,
                                "difficulty_step": 8}}}}}}, unit="fraction", max_buckets=4)


def drive_lm(api, num_steps):
    """AlgoPerf's loop, condensed: data_selection then update_params, per step."""
    workload = get_workload("stdlib_lm", **TINY)
    data_rng, opt_rng, model_rng, rng = jax.random.split(jax.random.PRNGKey(0), 4)
    queue = workload._build_input_queue(data_rng, "train", None, api.get_batch_size("stdlib_lm"))
    params, model_state = workload.init_model_fn(model_rng)
    state = api.init_optimizer_state(workload, params, model_state, None, opt_rng)
    shapes = []
    for step in range(num_steps):
        batch = api.data_selection(workload, queue, state, params, model_state, None, step, rng)
        shapes.append(batch["inputs"].shape)
        state, params, model_state = api.update_params(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=None, batch=batch, loss_type=workload.loss_type,
            optimizer_state=state, eval_results=[], global_step=step,
            rng=jax.random.fold_in(rng, step))
    api.prepare_for_eval(workload, params, workload.model_params_types, model_state, None,
                         workload.loss_type, state, [], num_steps, rng)
    return state, shapes


def test_stdlib_lm_compiles_the_train_step_once_per_length(tmp_path):
    selection = _selection(total_step=9)
    api = curriculum_submission_api(SubmissionConfig(name="t", plot=False), selection,
                                    lambda *_: tmp_path)
    state, shapes = drive_lm(api, 12)
    lengths = [s[1] for s in shapes]
    curriculum = selection.curriculum
    expected = [math.ceil(curriculum.buckets(curriculum.scheduler.get_difficulty(k + 1))
                          * 32 / 64) for k in range(12)]
    assert lengths == expected and lengths[-1] == 32 and lengths[0] < 32
    assert {s[0] for s in shapes} == {32}
    distinct = sorted(set(lengths))
    assert len(distinct) == 4
    assert state[1].train_step._cache_size() == len(distinct)
    report = json.loads((tmp_path / SEQLEN_REPORT_FILE).read_text())
    per_shape = report["lengths"]["per_shape"]
    assert {k: v["compilations"] for k, v in per_shape.items()} == {str(n): 1 for n in distinct}
    assert {k: v["steps"] for k, v in per_shape.items()} == {
        str(n): lengths.count(n) for n in distinct}
    assert report["passed_batches"] == 0 and report["lengths"]["within_bound"]
    assert report["tokens"]["computed"] == 32 * sum(lengths)
    assert report["tokens"]["real"] == report["tokens"]["computed"]


def test_selection_must_be_a_seqlen_selection():
    with pytest.raises(TypeError, match="selection must be"):
        curriculum_submission_api(SubmissionConfig(name="t"), {"data_sampling": {}})
