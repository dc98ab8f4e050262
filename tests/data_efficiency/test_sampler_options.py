"""DeepSpeedDataSampler's stream-changing options, off by default: wrap_small_clusters
(the fix of DeepSpeed's open PR #8520) and empty_selection_is_empty.

Each is compared with the plain-loop oracle run with the same option, and the default
with the oracle run without it (DeepSpeed's behaviour); sizes from the spec's rules.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest

from algoperf_reinit.data_efficiency import DeepSpeedDataSampler
from tests.data_efficiency.test_sampler_reference import (
    FIXTURE_VALUES,
    N,
    ReferenceSampler,
    config,
    copy_analysis,
    metric,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*not a multiple of 8")
A_PATHS = {"index_to_sample_path": "analysis/a/a_index_to_sample",
           "index_to_metric_path": "analysis/a/a_index_to_metric"}
B_PATHS = {"index_to_sample_path": "analysis/b/b_index_to_sample",
           "index_to_metric_path": "analysis/b/b_index_to_metric"}


def pair(tmp_path, metrics, micro, gas, custom=None, **options):
    copy_analysis(tmp_path)
    ours = DeepSpeedDataSampler(config(metrics), N, micro, 0, 1, gas, base_path=tmp_path,
                                **options)
    if custom:
        ours.set_custom_curriculum_learning_schedule(custom)
    ref = ReferenceSampler(metrics, FIXTURE_VALUES, N, micro, 1, gas, custom=custom,
                           wrap_all=options.get("wrap_small_clusters", False),
                           empty_is_empty=options.get("empty_selection_is_empty", False))
    return ours, ref


def same(ours, ref, count):
    got = [b.tolist() for b in itertools.islice(iter(ours), count)]
    assert got == list(itertools.islice(iter(ref), count))
    assert ours.data_cluster_sizes == [len(c) for c in ref.clusters]


class TestWrapSmallClusters:
    # Metric a at 16 admits 10 ids (a(i) = 8 + 37 i mod 57 <= 16): a global batch of 32
    # takes at most 10 + 10 of them with one wrap.
    METRICS: ClassVar = {"a": metric(lo=16, hi=64, total=40, step=8, paths=A_PATHS)}

    def test_default_is_deepspeeds_short_batch(self, tmp_path):
        ours, ref = pair(tmp_path, dict(self.METRICS), 4, 8)
        with pytest.warns(UserWarning, match=r"curriculum global batch 1 has 20 of 32 ids: "
                                             r"a cluster smaller than its share wraps only "
                                             r"once, as in DeepSpeed \(issue #8520\)"):
            assert len(ours.get_next_global_batch()) == 20
        ref.next_global_batch()
        assert len(ref.batch) == 20
        ours2, ref2 = pair(tmp_path / "again", dict(self.METRICS), 4, 8)
        with pytest.warns(UserWarning):
            same(ours2, ref2, 40)

    def test_option_returns_every_id(self, tmp_path):
        ours, _ = pair(tmp_path, dict(self.METRICS), 4, 8, wrap_small_clusters=True)
        batch = ours.get_next_global_batch()
        assert len(batch) == 32 and set(batch.tolist()) == {
            i for i in range(N) if FIXTURE_VALUES["a"][i] <= 16}
        ours2, ref2 = pair(tmp_path / "again", dict(self.METRICS), 4, 8,
                           wrap_small_clusters=True)
        same(ours2, ref2, 40)


class TestEmptySelectionIsEmpty:
    # a: value, custom: 64 (every id) at step 1, then 0 (no value <= 0: a selection of
    # None); max 100 so it never freezes. b: percentile 8 then 16 (its max).
    @staticmethod
    def metrics():
        a = metric(lo=0, hi=100, schedule_type="custom", paths=A_PATHS)
        del a["schedule_config"]
        return {"a": a, "b": metric("percentile", lo=4, hi=16, total=2, step=8,
                                    paths=B_PATHS)}

    CUSTOM: ClassVar = {"a": lambda step: 64 if step == 1 else 0}

    def test_default_none_is_no_constraint(self, tmp_path):
        ours, ref = pair(tmp_path, self.metrics(), 4, 2, self.CUSTOM)
        same(ours, ref, 30)
        # Step 1: b's first 8 * (64 // 16) = 32 ids; step 2: a is unconstrained, b all.
        assert ours.data_cluster_sizes == [32, 32]
        assert ours.data_cluster_paths == ["cluster_a64_b8", "cluster_a0_b16"]

    def test_option_makes_it_empty(self, tmp_path):
        ours, ref = pair(tmp_path, self.metrics(), 4, 2, self.CUSTOM,
                         empty_selection_is_empty=True)
        same(ours, ref, 30)
        assert ours.data_cluster_sizes == [32]
