"""Shape buckets (bounded compilations) and the per-shape compile counter."""

import doctest
import itertools
import json
import math

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    DEFAULT_MAX_BUCKETS,
    CurriculumScheduler,
    RandomLTDScheduler,
    Run,
    ShapeBuckets,
    ShapeCount,
    ShapeCounter,
    _buckets,
    curriculum_runs,
    joint_runs,
    monotone_runs,
    shape_name,
)


def test_doctests():
    assert doctest.testmod(_buckets).failed == 0


def linear(step, lo, hi, total, q):
    """Spec §2.1 fixed_linear (DeepSpeed 0.19.8 clamp), computed independently."""
    v = math.floor(float(step) / total * (hi - lo) + lo)
    v -= v % q
    return min(max(v, math.ceil(lo / q) * q), hi)


def gpt3_seqlen():
    return CurriculumScheduler({"min_difficulty": 80, "max_difficulty": 2048,
                                "schedule_type": "fixed_linear",
                                "schedule_config": {"total_curriculum_step": 110_000,
                                                    "difficulty_step": 8}})


def random_runs(rng, n, dims=1):
    """Runs of a non-decreasing random schedule with ``n`` distinct values, then a final one."""
    steps = np.cumsum(rng.integers(1, 5, size=(n + 1, dims)), axis=0)
    start, runs = 0, []
    for k, value in enumerate(steps):
        length = int(rng.integers(1, 20))
        runs.append(Run(start, None if k == n else start + length,
                        tuple(int(v) for v in value)))
        start += length
    return tuple(runs)


def cost(buckets, runs):
    return sum(abs(s) for s in buckets.shift(runs))


@pytest.mark.parametrize("rounding", ["down", "up"])
@pytest.mark.parametrize("seed", range(6))
def test_chosen_buckets_are_optimal_against_brute_force(seed, rounding):
    rng = np.random.default_rng(seed)
    runs = random_runs(rng, n=7)
    k = 4
    chosen = ShapeBuckets.from_runs(runs, max_buckets=k, rounding=rounding)
    assert len(chosen) == k and runs[-1].value in chosen.shapes
    values = sorted({r.value for r in runs[:-1]})
    best = math.inf
    for others in itertools.combinations(values, k - 1):
        candidate = ShapeBuckets([*others, runs[-1].value], rounding=rounding)
        try:
            best = min(best, cost(candidate, runs))
        except ValueError:  # a value with no bucket on its side
            continue
    assert cost(chosen, runs) == best


@pytest.mark.parametrize("rounding", ["down", "up"])
def test_two_component_chain_is_bounded_and_rounds_each_component(rounding):
    rng = np.random.default_rng(7)
    runs = random_runs(rng, n=30, dims=2)
    buckets = ShapeBuckets.from_runs(runs, max_buckets=5, rounding=rounding)
    assert len(buckets) == 5 and buckets.dims == 2
    for run in runs:
        b = buckets.bucket(run.value)
        ok = all((x <= v) if rounding == "down" else (x >= v)
                 for x, v in zip(b, run.value, strict=True))
        assert ok, (run.value, b)
    assert buckets(runs[-1].value) == runs[-1].value


def test_few_shapes_are_their_own_buckets_exactly():
    runs = (Run(0, 5, (64,)), Run(5, 9, (128,)), Run(9, None, (256,)))
    buckets = ShapeBuckets.from_runs(runs)
    assert buckets.shapes == ((64,), (128,), (256,))
    assert buckets.shift(runs) == (0.0,)
    assert [buckets(v) for v in (64, 100, 128, 300)] == [64, 64, 128, 256]


@pytest.mark.parametrize("rounding, lo, hi", [("down", -0.14, -0.12), ("up", 0.10, 0.12)])
def test_gpt3_seqlen_truncate_fits_the_default_bound(rounding, lo, hi):
    runs = curriculum_runs(gpt3_seqlen())
    assert len({r.value for r in runs}) == 247
    buckets = ShapeBuckets.from_runs(runs, rounding=rounding)
    assert len(buckets) == DEFAULT_MAX_BUCKETS == 8
    assert buckets.shapes[-1] == (2048,)
    if rounding == "down":
        assert buckets.shapes[0] == (80,)
    # Every scheduled length (spec formula, every step) maps to a bucket on its side.
    shift, used = 0, set()
    for step in range(1, 110_002):
        value = linear(step, 80, 2048, 110_000, 8)
        b = buckets(value)
        assert b <= value if rounding == "down" else b >= value
        shift += b - value
        used.add(b)
    assert used == {s[0] for s in buckets.shapes}
    assert buckets.shift(runs) == (float(shift),)
    scheduled = sum(linear(s, 80, 2048, 110_000, 8) for s in range(1, 110_000))
    assert lo < shift / scheduled < hi  # tokens computed vs DeepSpeed's before step 110k


def test_gpt3_joint_seqlen_and_random_ltd_pairs_fit_one_bound():
    # GPT-3 1.3B random-LTD: 128 -> 2048 kept tokens, step 16, 200k steps (spec §4.7).
    ltd = RandomLTDScheduler({"enabled": True, "total_layer_num": 24,
                              "random_ltd_layer_num": 22,
                              "random_ltd_layer_id": list(range(1, 23)),
                              "model_mask_name": None, "model_type": "decoder",
                              "hidden_state_order": "seq_batch_dim",
                              "random_ltd_schedule": {
                                  "min_value": 128, "max_value": 2048,
                                  "schedule_type": "fixed_linear",
                                  "schedule_config": {"require_steps": 200_000,
                                                      "seq_per_step": 16}},
                              "global_batch_size": 512})
    ltd_runs = monotone_runs(ltd.get_value, first_step=0, max_value=2048, initial=128)
    assert len(ltd_runs) == 121  # spec §8.4
    # The curriculum's step k + 1 is random-LTD's step k: shift the curriculum by one.
    seq = tuple(r._replace(start=r.start - 1, stop=None if r.stop is None else r.stop - 1)
                for r in curriculum_runs(gpt3_seqlen()))
    pairs = joint_runs(seq, ltd_runs)
    assert len({r.value for r in pairs}) > 300
    buckets = ShapeBuckets.from_runs(pairs, max_buckets=8)
    assert len(buckets) <= 8 and buckets.shapes[-1] == (2048, 2048)
    for run in pairs:
        assert all(b <= v for b, v in zip(buckets.bucket(run.value), run.value, strict=True))


def test_bucket_errors_name_the_rule():
    with pytest.raises(ValueError, match=r"rounding must be one of 'down', 'up'.*did you mean"):
        ShapeBuckets([1], rounding="dwn")
    with pytest.raises(ValueError, match="shapes must be shapes of one length"):
        ShapeBuckets([1, (2, 3)])
    with pytest.raises(ValueError, match="shapes must be a non-empty set of shapes"):
        ShapeBuckets([])
    with pytest.raises(TypeError, match="shapes must be a real number, got 'a'"):
        ShapeBuckets(["a"])
    down, up = ShapeBuckets([64, 128]), ShapeBuckets([64, 128], rounding="up")
    with pytest.raises(ValueError, match=r"shape must be >= the smallest bucket \(64,\)"):
        down(32)
    with pytest.raises(ValueError, match=r"shape must be <= the largest bucket \(128,\)"):
        up(129)
    with pytest.raises(ValueError, match="shape must be a shape of 1 numbers"):
        down((64, 64))
    runs = (Run(0, 2, (1,)), Run(2, None, (2,)))
    with pytest.raises(ValueError, match="max_buckets must be >= 2 for a schedule of 2 shapes"):
        ShapeBuckets.from_runs(runs, max_buckets=1)
    with pytest.raises(ValueError, match="runs must be a non-empty sequence of Run"):
        ShapeBuckets.from_runs([(0, None, (1,))])


def test_buckets_round_trip_through_json():
    buckets = ShapeBuckets([(64, 32), (128, 64)], rounding="up")
    again = ShapeBuckets.from_dict(json.loads(json.dumps(buckets.to_dict())))
    assert again == buckets and hash(again) == hash(buckets)
    assert again != ShapeBuckets([(64, 32), (128, 64)])


def test_shape_counter_counts_steps_and_compilations_per_shape():
    counter = ShapeCounter(bound=2)
    for shape, cache in [((64,), 1), ((64,), 1), ((128,), 2), ((64,), 2), ((256,), 3)]:
        counter.record_step(shape)
        counter.observe_cache_size(shape, cache)
    counter.record_compilations(256, 2)
    assert counter.counts == {(64,): ShapeCount(3, 1), (128,): ShapeCount(1, 1),
                              (256,): ShapeCount(1, 3)}
    summary = counter.summary()
    assert summary == {"bound": 2, "shapes": 3, "steps": 5, "compilations": 5,
                       "within_bound": False,
                       "per_shape": {"64": {"steps": 3, "compilations": 1},
                                     "128": {"steps": 1, "compilations": 1},
                                     "256": {"steps": 1, "compilations": 3}}}
    restored = ShapeCounter(bound=2)
    restored.load_state_dict(json.loads(json.dumps(counter.state_dict())))
    assert restored.counts == counter.counts
    assert restored.observe_cache_size((64,), 3) == 0  # the cache size was restored too
    assert ShapeCounter(bound=None).summary()["within_bound"] is True
    with pytest.raises(ValueError, match="count must be an int >= 0, got -1"):
        counter.record_compilations(64, -1)


def test_shape_names():
    assert shape_name(64) == "64" and shape_name((64, 32)) == "64x32"
    assert shape_name((0.5,)) == "0.5"
