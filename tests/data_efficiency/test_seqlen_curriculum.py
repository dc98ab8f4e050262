"""The sequence-length curriculum: offsets, lengths, tokens, compilations, 8 devices."""

import doctest
import json
import math
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit.data_efficiency import (
    CurriculumScheduler,
    SeqlenCurriculum,
    _seqlen_curriculum,
)
from algoperf_reinit.runner import CompileCounter


def test_doctests():
    assert doctest.testmod(_seqlen_curriculum).failed == 0


def linear(step, lo, hi, total, q, clamp=True):
    """Spec §2.1 fixed_linear, computed independently (float64, Python semantics)."""
    v = math.floor(float(step) / total * (hi - lo) + lo)
    v -= v % q
    if clamp:
        v = max(v, math.ceil(lo / q) * q)
    return min(v, hi)


def metric(lo, hi, total, q=8, **extra):
    return {"min_difficulty": lo, "max_difficulty": hi, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": total, "difficulty_step": q},
            **extra}


def lm_batch(b, s, seed=0, pad=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 256, size=(b, s + 1)).astype(np.int32)
    weights = np.ones((b, s), np.float32)
    if pad:
        weights[:, s - pad:] = 0
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "weights": weights}


def legacy_config():
    return {"train_batch_size": 4, "curriculum_learning": {
        "enabled": True, "curriculum_type": "seqlen", "min_difficulty": 8, "max_difficulty": 64,
        "schedule_type": "fixed_linear",
        "schedule_config": {"total_curriculum_step": 6, "difficulty_step": 8}}}


def test_legacy_block_gives_deepspeeds_recorded_lengths():
    # Spec §5, recorded with DeepSpeed 0.19.5 (legacy CL 8 -> 64, T 6, step 8): the
    # forwards of global steps 0..5 see curriculum_seqlen 16, 24, 32, 40, 48, 64.
    with pytest.warns(DeprecationWarning, match="became the curriculum metric"):
        curriculum = SeqlenCurriculum.from_config(legacy_config())
    assert curriculum.mode == "seqlen_truncate" and curriculum.scheduler.legacy_rounding
    batch = lm_batch(4, 64)
    lengths = [curriculum(batch, g)["inputs"].shape[1] for g in range(6)]
    assert lengths == [16, 24, 32, 40, 48, 64]
    assert [curriculum.last_plan.curriculum_step] == [6]  # global_steps + 1


@pytest.mark.parametrize("offset", [0, 1, 5])
def test_step_offset_is_explicit(offset):
    curriculum = SeqlenCurriculum(metric(16, 128, 50), step_offset=offset, max_buckets=100)
    for g in range(60):  # the host-side plan (what __call__ cuts to), no device work
        plan = curriculum.plan(g, 2, 128)
        assert plan.length == plan.scheduled_length == linear(g + offset, 16, 128, 50, 8)
        assert plan.curriculum_step == g + offset
    fresh = SeqlenCurriculum(metric(16, 128, 50), step_offset=offset, max_buckets=100)
    assert fresh(lm_batch(2, 128), 7)["inputs"].shape[1] == linear(7 + offset, 16, 128, 50, 8)


def test_a_fraction_of_the_batch_length_fits_workloads_of_different_lengths():
    # difficulty / max_difficulty of the batch's own length, rounded up (exact rationals).
    cfg = metric(8, 64, 7)
    for s in (100, 256, 37):
        curriculum = SeqlenCurriculum(cfg, unit="fraction")
        for g in range(9):
            d = linear(g + 1, 8, 64, 7, 8)
            plan = curriculum.plan(g, 2, s)
            assert plan.length == plan.scheduled_length == min(-(-d * s // 64), s)
        fresh = SeqlenCurriculum(cfg, unit="fraction")  # the plans above reached the max
        assert fresh(lm_batch(2, s), 0)["inputs"].shape[1] == -(-16 * s // 64)


def test_tokens_count_scheduled_computed_and_real_per_the_spec():
    # 121 scheduled lengths in 4 buckets rounded down: computed < scheduled (DeepSpeed's).
    cfg = metric(64, 1024, 300)
    curriculum = SeqlenCurriculum(cfg, max_buckets=4)
    assert len(curriculum.buckets) == 4
    b, s, pad = 4, 1000, 100
    batch = lm_batch(b, s, pad=pad)
    scheduled = computed = real = 0
    for g in range(400):
        out = curriculum(batch, g)
        d = linear(g + 1, 64, 1024, 300, 8)
        bucket = curriculum.buckets(d)
        assert bucket <= d and out["inputs"].shape == (b, min(bucket, s))
        scheduled += b * min(d, s)
        computed += b * min(bucket, s)
        real += b * min(bucket, s - pad)
    assert curriculum.tokens == (scheduled, computed, real)
    assert computed < scheduled
    summary = curriculum.summary()
    assert summary["tokens"] == {"scheduled": scheduled, "computed": computed, "real": real}
    assert summary["lengths"]["shapes"] == 4 and summary["lengths"]["steps"] == 400
    json.dumps(summary)


def test_reshape_counts_rows_and_keeps_the_token_budget():
    config = {"data_sampling": {"curriculum_learning": {
        "enabled": True, "curriculum_metrics": {"seqlen_reshape": {
            **metric(16, 64, 4), "difficulty_type": "value",
            "clustering_type": "single_cluster"}}}}}
    curriculum = SeqlenCurriculum.from_config(config)
    assert curriculum.mode == "seqlen_reshape"
    b, s = 3, 64
    batch = lm_batch(b, s)
    scheduled = 0
    for g in range(5):
        out = curriculum(batch, g)
        d = linear(g + 1, 16, 64, 4, 8)
        rows = -(-b * s // d) if d < s else b
        assert out["inputs"].shape == (rows, min(d, s))
        scheduled += rows * min(d, s)
    assert curriculum.tokens == (scheduled, scheduled, scheduled)


def test_other_batches_and_full_length_pass_through_as_the_same_object():
    curriculum = SeqlenCurriculum(metric(64, 128, 10))
    images = {"inputs": np.zeros((4, 8, 8, 3), np.float32), "targets": np.zeros(4, np.int32)}
    assert curriculum(images, 0) is images
    short = lm_batch(2, 32)  # scheduled 64 >= 32: nothing to cut
    assert curriculum(short, 0) is short
    assert curriculum.tokens == (64, 64, 64)
    assert curriculum.summary()["passed_batches"] == 1


def test_state_dict_resumes_exactly():
    cfg = metric(16, 256, 40)
    batch = lm_batch(2, 256, pad=30)
    whole = SeqlenCurriculum(cfg, max_buckets=5)
    first = SeqlenCurriculum(cfg, max_buckets=5)
    lengths_whole = [whole(batch, g)["inputs"].shape[1] for g in range(50)]
    lengths = [first(batch, g)["inputs"].shape[1] for g in range(20)]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = SeqlenCurriculum(cfg, max_buckets=5)
    resumed.load_state_dict(state)
    lengths += [resumed(batch, g)["inputs"].shape[1] for g in range(20, 50)]
    assert lengths == lengths_whole
    assert resumed.tokens == whole.tokens
    assert resumed.counter.counts == whole.counter.counts
    other = SeqlenCurriculum(cfg, max_buckets=3)
    with pytest.raises(ValueError, match=r"state_dict\['buckets'\] must be .* as configured"):
        other.load_state_dict(state)


def test_construction_errors_name_the_key_or_argument():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        legacy = CurriculumScheduler(metric(8, 64, 10, q=16), legacy_rounding=True)
    with pytest.raises(ValueError, match=r"buckets must be a difficulty that gives >= 1 token, "
                                         r"got 0; .*min_difficulty 8 rounds below 1"):
        SeqlenCurriculum(legacy)
    with pytest.raises(ValueError, match="mode must be one of 'seqlen_truncate', "
                                         "'seqlen_reshape', got 'seqlen_trunc'; did you mean"):
        SeqlenCurriculum(metric(8, 64, 10), mode="seqlen_trunc")
    with pytest.raises(ValueError, match="unit must be one of 'tokens', 'fraction'"):
        SeqlenCurriculum(metric(8, 64, 10), unit="percent")
    with pytest.raises(ValueError, match="step_offset must be an int >= 0, got -1"):
        SeqlenCurriculum(metric(8, 64, 10), step_offset=-1)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    with pytest.raises(ValueError, match=r"mesh.axis_names must be \('batch',\), a 1-D mesh"):
        SeqlenCurriculum(metric(8, 64, 10), mesh=mesh)
    custom = CurriculumScheduler({**metric(8, 64, 10), "schedule_type": "custom"})
    custom.set_custom_get_difficulty(lambda step: 8 * (1 + step // 10))
    with pytest.raises(ValueError, match="num_steps must be the number of steps"):
        SeqlenCurriculum(custom)
    assert len(SeqlenCurriculum(custom, num_steps=200).buckets) <= 8
    with pytest.raises(ValueError, match="global_step must be an int >= 0, got -1"):
        SeqlenCurriculum(metric(8, 64, 10))(lm_batch(2, 64), -1)


def test_from_config_errors():
    with pytest.raises(ValueError, match=r"curriculum_learning\.enabled must be True for a "
                                         r"sequence-length curriculum"):
        SeqlenCurriculum.from_config({})
    other = {"data_sampling": {"curriculum_learning": {"enabled": True, "curriculum_metrics": {
        "rarity": {**metric(8, 64, 10), "difficulty_type": "value",
                   "clustering_type": "single_cluster"}}}}}
    with pytest.raises(ValueError, match=r"curriculum_metrics must be metrics with exactly one "
                                         r"of \['seqlen_truncate', 'seqlen_reshape'\]"):
        SeqlenCurriculum.from_config(other)


def test_compilations_stay_within_the_bound_over_a_whole_scheduled_run():
    # 1000 steps of fixed_linear 64 -> 1024 (121 lengths): one train-step compile per
    # bucket, at most 8, counted from jax.monitoring and from the step's cache.
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    batch_sharding, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    curriculum = SeqlenCurriculum(metric(64, 1024, 800), mesh=mesh)

    def train_step(params, batch):
        def loss(p):
            logits = jnp.take(p, batch["inputs"], axis=0).sum(-1)
            return (batch["weights"] * logits).sum() / batch["weights"].sum()
        return params - 1e-3 * jax.grad(loss)(params)

    step = jax.jit(train_step, in_shardings=(replicated, batch_sharding),
                   out_shardings=replicated)
    params = jax.device_put(jnp.zeros((256, 4)), replicated)
    batch = jax.device_put(lm_batch(8, 1024), batch_sharding)
    with CompileCounter() as counter:
        for g in range(1000):
            selected = curriculum(batch, g)
            params = step(params, selected)
            length = curriculum.last_plan.length
            curriculum.counter.observe_cache_size((length,), step._cache_size())
        jax.block_until_ready(params)
    names = [name for _, name, _ in counter.events]
    summary = curriculum.counter.summary()
    assert names.count("jit(train_step)") == summary["compilations"] == summary["shapes"] <= 8
    assert summary["within_bound"] and summary["steps"] == 1000
    assert all(c == {"steps": c["steps"], "compilations": 1}
               for c in summary["per_shape"].values())
    assert names.count("jit(cut)") == summary["shapes"] - 1  # no op at the full length
    assert curriculum.last_plan.length == 1024


EIGHT_DEVICES = r"""
import json, jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from algoperf_reinit.data_efficiency import SeqlenCurriculum, reshape_batch
mesh = Mesh(np.asarray(jax.devices()), ("batch",))
rng = np.random.default_rng(0)
tokens = rng.integers(0, 256, size=(8, 41)).astype(np.int32)
host = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "weights": np.ones((8, 40), bool)}
batch = jax.device_put(host, NamedSharding(mesh, P("batch")))
cfg = {"min_difficulty": 8, "max_difficulty": 40, "schedule_type": "fixed_linear",
       "schedule_config": {"total_curriculum_step": 3, "difficulty_step": 8}}
out = {}
for mode in ("seqlen_truncate", "seqlen_reshape"):
    curriculum = SeqlenCurriculum(cfg, mode=mode)
    for g in range(3):
        got = curriculum(batch, g)
        length = curriculum.last_plan.length
        want = ({k: v[:, :length] for k, v in host.items()} if mode == "seqlen_truncate"
                else {k: np.asarray(v) for k, v in reshape_batch(host, length,
                                                                 row_multiple=8).items()})
        out.setdefault(mode, []).append({
            "length": length, "rows": int(got["inputs"].shape[0]),
            "equal": all(np.array_equal(np.asarray(got[k]), want[k]) for k in host),
            "sharding": all(got[k].sharding == NamedSharding(mesh, P("batch")) for k in host),
            "shard_rows": sorted({s.data.shape[0] for s in got["inputs"].addressable_shards})})
    out[mode + "_tokens"] = list(curriculum.tokens)
print(json.dumps({"devices": jax.device_count(), **out}))
"""


def test_eight_devices_shard_the_cut_batches_evenly():
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    # Curriculum steps 1, 2, 3: floor(18.67) -> 16, floor(29.33) -> 24, 40.
    lengths = [linear(g + 1, 8, 40, 3, 8) for g in range(3)]
    for mode in ("seqlen_truncate", "seqlen_reshape"):
        steps = result[mode]
        assert [s["length"] for s in steps] == lengths
        assert all(s["equal"] and s["sharding"] for s in steps), steps
        for s in steps[:2]:
            kept = math.ceil(8 * 40 / s["length"])
            rows = 8 if mode == "seqlen_truncate" else math.ceil(kept / 8) * 8
            assert s["rows"] == rows and s["shard_rows"] == [rows // 8]
    # Re-packed rows padded to a multiple of 8 count as computed, not as scheduled or real.
    scheduled = sum(-(-8 * 40 // n) * n if n < 40 else 8 * 40 for n in lengths)
    computed = sum(s["rows"] * s["length"] for s in result["seqlen_reshape"])
    real = sum(-(-8 * 40 // n) * n if n < 40 else 8 * 40 for n in lengths)  # all weights 1
    assert result["seqlen_reshape_tokens"] == [scheduled, computed, real]
    assert computed > scheduled
