"""SeqlenSelection: a curriculum per trial, data_selection's body, compilations per length."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.data_efficiency import SEQLEN_REPORT_FILE, SeqlenSelection

METRIC = {"difficulty_type": "value", "clustering_type": "single_cluster",
          "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
          "schedule_config": {"total_curriculum_step": 4, "difficulty_step": 8}}


def config(metrics):
    return {"data_sampling": {"curriculum_learning": {"enabled": True,
                                                      "curriculum_metrics": metrics}}}


def lm_batch(b=4, s=32):
    tokens = np.arange(b * s, dtype=np.int32).reshape(b, s) % 256
    return {"inputs": tokens, "targets": tokens, "weights": np.ones((b, s), np.float32)}


def test_select_cuts_by_step_and_a_new_trial_restarts():
    selection = SeqlenSelection(config({"seqlen_truncate": METRIC}), unit="fraction")
    selection.start()
    lengths = [selection.select(iter([lm_batch()]), k)["inputs"].shape[1] for k in range(5)]
    assert lengths == sorted(lengths) and lengths[0] < 32 and lengths[-1] == 32
    selection.start()
    assert selection.curriculum.counter.summary()["steps"] == 0
    assert [selection.select(iter([lm_batch()]), k)["inputs"].shape[1]
            for k in range(5)] == lengths


def test_other_batches_pass_through_as_the_same_object():
    selection = SeqlenSelection(config({"seqlen_truncate": METRIC}))
    selection.start()
    images = {"inputs": np.zeros((4, 8, 8, 1), np.float32), "targets": np.zeros(4, np.int32)}
    assert selection.select(iter([images]), 0) is images
    assert selection.summary()["passed_batches"] == 1


def test_observe_attributes_compilations_to_the_length_and_writes_the_report(tmp_path):
    selection = SeqlenSelection(config({"seqlen_truncate": METRIC}), unit="fraction")
    selection.start(tmp_path)
    step = jax.jit(lambda batch: jnp.sum(batch["inputs"]))
    images = {"inputs": np.zeros((4, 3), np.float32), "targets": np.zeros(4, np.int32)}
    for k, batch in enumerate([images, lm_batch(), lm_batch(), lm_batch(), lm_batch()]):
        step(selection.select(iter([batch]), k))
        selection.observe(step)
    stale = json.loads((tmp_path / SEQLEN_REPORT_FILE).read_text())  # at the last compile
    assert selection.write_report() == str(tmp_path / SEQLEN_REPORT_FILE)
    report = json.loads((tmp_path / SEQLEN_REPORT_FILE).read_text())
    assert stale["lengths"]["steps"] < report["lengths"]["steps"]
    per_shape = report["lengths"]["per_shape"]
    assert report["passed_batch_compilations"] == 1 and report["passed_batches"] == 1
    assert sum(v["compilations"] for v in per_shape.values()) == step._cache_size() - 1
    assert all(v["compilations"] == 1 for v in per_shape.values())
    assert sum(v["steps"] for v in per_shape.values()) == 4


def test_errors_at_construction_and_before_start():
    with pytest.raises(ValueError, match="exactly one of"):
        SeqlenSelection(config({"a": METRIC, "b": METRIC}))
    with pytest.raises(ValueError, match="unit must be one of"):
        SeqlenSelection(config({"seqlen_truncate": METRIC}), unit="bytes")
    with pytest.raises(RuntimeError, match="start"):
        SeqlenSelection(config({"seqlen_truncate": METRIC})).select(iter([lm_batch()]), 0)
    with pytest.raises(TypeError, match="cache_size"):
        selection = SeqlenSelection(config({"seqlen_truncate": METRIC}))
        selection.start()
        selection.observe(type("F", (), {"_cache_size": lambda self: 1.5})())
