"""The sampler's building blocks: ClusterStore (take, wraps, files) and MetricIndex /
new_cluster_ids (value and percentile selections, DeepSpeed's None-or-empty corners).

Oracles: the plain loops of ``test_sampler_reference.ReferenceSampler`` (spec §3.3-3.5)
and NumPy's own set functions where the spec names them.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    CurriculumMetricConfig,
    MMapIndexedDataset,
    find_fit_int_dtype,
    write_rows,
)
from algoperf_reinit.data_efficiency._clusters import ClusterStore, cluster_name, shuffle_in_place
from algoperf_reinit.data_efficiency._intersection import Intersection
from algoperf_reinit.data_efficiency._selection import MetricIndex, band_cluster_ids
from tests.data_efficiency.test_sampler_reference import ReferenceSampler, write_index


def reference_take(clusters, positions, counts, seed, wrap_all=False):
    """ReferenceSampler's per-cluster loop on given clusters."""
    ref = ReferenceSampler({}, {}, 1, 1, 1, 1, seed, wrap_all=wrap_all)
    ref.clusters, ref.positions = [list(c) for c in clusters], list(positions)
    out = []
    for c, k in enumerate(counts):
        out += ref.take(c, k)
    return out, ref


def store_with(clusters, directory=None):
    store = ClusterStore(100, directory)
    for i, ids in enumerate(clusters):
        store.add(f"cluster_m{i}", np.asarray(ids), None)
    return store


CLUSTERS = [list(range(10, 20)), [3, 1, 2], list(range(40, 47))]


class TestTake:
    @pytest.mark.parametrize(("positions", "counts"), [
        ([0, 0, 0], [4, 1, 2]),  # no wrap
        ([6, 0, 0], [4, 3, 7]),  # exact fits: cursors end at the sizes, no reshuffle
        ([10, 3, 7], [0, 0, 0]),  # nothing taken
        ([8, 2, 0], [5, 2, 1]),  # wraps once: tail, reshuffle, head
        ([8, 1, 5], [14, 9, 3]),  # more than what is left plus the whole cluster: short
        ([13, 5, 9], [2, 1, 1]),  # cursors past the end (after a short take)
    ])
    @pytest.mark.parametrize("wrap_all", [False, True])
    def test_matches_the_per_cluster_loop(self, positions, counts, wrap_all):
        store = store_with(CLUSTERS)
        store.positions = positions
        got = store.take(np.array(counts), np.random.default_rng(3), wrap_all=wrap_all)
        expected, ref = reference_take(CLUSTERS, positions, counts, 3, wrap_all)
        assert got.dtype == np.int64 and got.tolist() == expected
        assert store.positions == ref.positions
        for c, ids in enumerate(ref.clusters):
            assert store.ids(c).tolist() == ids

    def test_one_wrap_is_short_and_leaves_the_cursor_unclamped(self):
        store = store_with([[1, 2, 3]])
        got = store.take(np.array([8]), np.random.default_rng(0))
        assert len(got) == 6 and store.positions == [5]  # 3 left, 3 after one reshuffle
        full = store_with([[1, 2, 3]])
        got = full.take(np.array([8]), np.random.default_rng(0), wrap_all=True)
        assert len(got) == 8 and full.positions == [2] and sorted(got[:3]) == [1, 2, 3]

    def test_reshuffle_is_one_generator_shuffle_of_the_current_order(self):
        store = store_with([[5, 6, 7, 8]])
        store.positions = [4]
        store.take(np.array([1]), np.random.default_rng(9))
        expected = np.array([5, 6, 7, 8])
        np.random.default_rng(9).shuffle(expected)
        assert store.ids(0).tolist() == expected.tolist()

    def test_ids_view_is_read_only(self):
        with pytest.raises(ValueError, match="read-only"):
            store_with(CLUSTERS).ids(0)[0] = 1


class TestFiles:
    def test_written_at_creation_and_rewritten_after_a_reshuffle(self, tmp_path):
        store = ClusterStore(64, str(tmp_path))
        rng = np.random.default_rng(1)
        store.add("cluster_a16", np.arange(5), rng)
        first = MMapIndexedDataset(tmp_path / "cluster_a16")
        assert first.dtype == find_fit_int_dtype(0, 64)
        assert first[0].tolist() == store.ids(0).tolist()
        assert sorted(first[0].tolist()) == list(range(5))
        store.positions = [5]
        store.take(np.array([2]), rng)
        expected = tmp_path / "expected"
        write_rows(expected, [store.ids(0)], np.uint8)
        assert (tmp_path / "cluster_a16.bin").read_bytes() == expected.with_suffix(
            ".bin").read_bytes()
        assert (tmp_path / "cluster_a16.idx").read_bytes() == expected.with_suffix(
            ".idx").read_bytes()
        assert store.crc32(0) == zlib.crc32((tmp_path / "cluster_a16.bin").read_bytes())

    def test_memory_only_without_a_directory(self, tmp_path):
        store = ClusterStore(64)
        store.add("cluster_a16", np.arange(5), np.random.default_rng(1))
        assert store.directory is None and store.names == ["cluster_a16"]

    def test_a_name_can_only_be_used_once(self):
        store = store_with([[1]])
        with pytest.raises(ValueError, match="new curriculum cluster name must be a name not "
                                             "taken by an earlier cluster, got 'cluster_m0'"):
            store.add("cluster_m0", np.array([2]), None)

    def test_buffer_grows(self):
        store = ClusterStore(4)
        for i in range(20):
            store.add(f"c{i}", np.array([0, 1, 2, 3]), None)
        assert store.sizes.tolist() == [4] * 20 and store.ids(19).tolist() == [0, 1, 2, 3]

    def test_cluster_name(self):
        assert cluster_name({"a": 16, "b": 4}) == "cluster_a16_b4"
        assert cluster_name({}) == "cluster"


def metric_config(kind, hi=100, **paths):
    return CurriculumMetricConfig(
        difficulty_type=kind, clustering_type="schedule_based", min_difficulty=0,
        max_difficulty=hi, schedule_type="fixed_linear",
        schedule_config={"total_curriculum_step": 10, "difficulty_step": 8}, **paths)


VALUES = np.array([5, 3, 9, 3, 7, 1, 9, 9, 5, 2, 8, 3, 0, 6, 6, 4, 9, 1, 2, 7])


def index(tmp_path, kind, values=VALUES, hi=100, unsorted=False):
    paths = write_index(tmp_path, "m", values)
    if unsorted:  # rewrite the rows in another (non-ascending) order of values
        distinct = sorted(set(values.tolist()))
        order = distinct[1::2] + distinct[::2]
        write_rows(tmp_path / paths["index_to_sample_path"],
                   [np.flatnonzero(values == v) for v in order],
                   find_fit_int_dtype(0, len(values) - 1))
        write_rows(tmp_path / paths["index_to_metric_path"], [[v] for v in order],
                   find_fit_int_dtype(0, max(distinct)))
    return MetricIndex("m", metric_config(kind, hi, **paths), len(values), tmp_path)


def reference_band(values, kind, a, b, hi, n1=None, order=None):
    ref = ReferenceSampler({"m": {"min_difficulty": 0, "max_difficulty": hi,
                                  "difficulty_type": kind,
                                  "clustering_type": "schedule_based"}},
                           {"m": values}, len(values), 1, 1, 1)
    if order is not None:
        ref.rows["m"] = sorted(ref.rows["m"], key=lambda row: order.index(row[0]))
    ref.n1 = len(values) if n1 is None else n1
    return ref.band("m", a, b)


def as_list(x):
    return None if x is None else list(np.asarray(x).tolist())


class TestValueBand:
    @pytest.mark.parametrize("unsorted", [False, True])
    def test_every_pair_of_thresholds(self, tmp_path, unsorted):
        idx = index(tmp_path, "value", unsorted=unsorted)
        distinct = sorted(set(VALUES.tolist()))
        order = (distinct[1::2] + distinct[::2]) if unsorted else None
        thresholds = [float("-inf"), -3, 0, 2.5, 3, 8, 9, 300]
        for a, b in itertools.product(thresholds, repeat=2):
            assert as_list(idx.value_band(a, b)) == reference_band(
                VALUES, "value", a, b, 100, order=order), (a, b)

    def test_none_when_no_value_is_in_range(self, tmp_path):
        assert index(tmp_path, "value").value_band(9, 300) is None


class TestPercentileBand:
    @pytest.mark.parametrize(("hi", "n1"), [(10, None), (7, None), (20, None), (6, 14),
                                            (4, 26)])
    def test_every_pair_of_percentiles(self, tmp_path, hi, n1):
        # Includes start > end (a non-monotone schedule) and n1 of another metric.
        idx = index(tmp_path, "percentile", hi=hi)
        n1 = len(VALUES) if n1 is None else n1
        for a, b in itertools.product(range(hi + 1), repeat=2):
            assert as_list(idx.percentile_band(a, b, n1, hi)) == reference_band(
                VALUES, "percentile", a, b, hi, n1), (a, b)

    def test_nothing_below_the_max_when_n1_is_smaller_than_max(self, tmp_path):
        idx = index(tmp_path, "percentile")
        assert as_list(idx.percentile_band(0, 99, 20, 100)) == []
        assert len(idx.percentile_band(0, 100, 20, 100)) == 20


class TestIntersection:
    def indexes(self, tmp_path, unsorted=()):
        a = np.array([1, 5, 2, 8, 3, 9, 4, 7])
        b = np.array([3, 1, 4, 1, 5, 9, 2, 6])
        out = {}
        for name, values in (("a", a), ("b", b)):
            root = tmp_path / f"i{name}"
            out[name] = index(root, "value", values, unsorted=name in unsorted)
        return out

    def build(self, indexes, current, covered=None, order=None, **kwargs):
        covered = np.zeros(8, bool) if covered is None else covered
        inter = Intersection(indexes, order or list(current), 8, **kwargs)
        return as_list(inter.new_ids(current, 0, covered))

    @pytest.mark.parametrize("unsorted", [(), ("b",)])  # incremental, full masks
    def test_intersection_is_sorted_minus_existing_clusters(self, tmp_path, unsorted):
        idx = self.indexes(tmp_path, unsorted)
        a, b = idx["a"].cumulative(5, 0), idx["b"].cumulative(4, 0)
        assert self.build(idx, {"a": 5, "b": 4}) == np.intersect1d(a, b).tolist()
        covered = np.zeros(8, bool)
        covered[[0]] = True
        assert self.build(idx, {"a": 5, "b": 4}, covered) == np.setdiff1d(
            np.intersect1d(a, b), [0]).tolist()

    def test_a_first_selection_of_none_is_no_constraint_keeping_row_order(self, tmp_path):
        idx = self.indexes(tmp_path)
        # a <= 0 selects no row (None): b's selection stays in its row order (value 1:
        # ids 1, 3; value 2: id 6), as DeepSpeed's `new = sel if new is None` gives.
        assert self.build(idx, {"a": 0, "b": 2}) == [1, 3, 6]
        assert self.build(idx, {"a": 0, "b": 2}, empty_is_empty=True) == []

    def test_a_later_none_is_no_constraint_where_deepspeed_crashes(self, tmp_path):
        idx = self.indexes(tmp_path)
        assert self.build(idx, {"b": 2, "a": 0}) == [1, 3, 6]
        with pytest.raises(TypeError):  # DeepSpeed's intersect1d(array, None)
            np.intersect1d(np.array([1, 3, 6]), None, assume_unique=True)
        assert self.build(idx, {"b": 2, "a": 0}, empty_is_empty=True) == []
        assert self.build(idx, {"b": 0, "a": 0}) is None

    def test_single_cluster_metric_intersects_with_every_id(self, tmp_path):
        idx = self.indexes(tmp_path)
        got = self.build(idx, {"s": 8, "a": 0, "b": 2}, order=["s", "a", "b"])
        assert got == [1, 3, 6]  # arange(8) first: the intersection sorts

    def test_incremental_equals_the_full_computation_over_a_schedule(self, tmp_path):
        # Non-monotone difficulties included; the second sampler only takes the full path.
        rng = np.random.default_rng(4)
        values = {"a": rng.integers(0, 30, 500), "b": rng.integers(0, 50, 500)}
        fast = {n: index(tmp_path / f"f{n}", "value", v) for n, v in values.items()}
        fast["p"] = index(tmp_path / "fp", "percentile", values["b"], hi=20)
        slow = {n: index(tmp_path / f"s{n}", "value", v, unsorted=True) for n, v in
                values.items()}
        slow["p"] = fast["p"]
        inc, full = Intersection(fast, list(fast), 500), Intersection(slow, list(slow), 500)
        assert inc._prefix and not full._prefix
        covered_inc, covered_full = np.zeros(500, bool), np.zeros(500, bool)
        for a, b, p in [(3, 5, 1), (8, 5, 2), (8, 12, 2), (5, 20, 4), (20, 40, 9),
                        (20, 40, 12), (29, 49, 20), (10, 10, 20), (29, 60, 20)]:
            current = {"a": a, "b": b, "p": p}
            got, expected = inc.new_ids(current, 500, covered_inc), full.new_ids(
                current, 500, covered_full)
            assert as_list(got) == as_list(expected), current
            covered_inc[got] = covered_full[expected] = True


class TestBandClusterIds:
    def test_single_metric_band_and_first_cluster(self, tmp_path):
        one = {"a": index(tmp_path, "value", np.array([1, 5, 2, 8, 3, 9, 4, 7]))}
        got = band_cluster_ids(one, {"a": 5}, {"a": 2}, num_samples=8, n1=0,
                               has_clusters=True)
        assert got.tolist() == [4, 6, 1]  # values 3, 4, 5 in row order
        every = band_cluster_ids({}, {"s": 8}, {"s": 0}, num_samples=8, n1=0,
                                 has_clusters=False)
        assert every.tolist() == list(range(8))
        assert band_cluster_ids({}, {"s": 16}, {"s": 8}, num_samples=8, n1=0,
                                has_clusters=True) is None


class TestIndexErrors:
    def test_ids_beyond_the_dataset(self, tmp_path):
        paths = write_index(tmp_path, "m", VALUES)
        with pytest.raises(ValueError, match=r"sample id in .*\.index_to_sample_path .* must "
                                             r"be in \[0, one_epoch_total_samples\) = \[0, 10\), "
                                             r"got 19"):
            MetricIndex("m", metric_config("value", **paths), 10, tmp_path)

    @pytest.mark.parametrize(("rows", "match"), [
        ([[1]], r"number of rows of .*index_to_metric_path .* must be the number of rows of "
                r"index_to_sample \(10\), got 1"),
        ([[v, v] for v in range(10)], r"row 0 of .*index_to_metric_path .* must be 1 value "
                                      r"long \(one row per distinct metric value\), got 2"),
    ])
    def test_bad_index_to_metric(self, tmp_path, rows, match):
        paths = write_index(tmp_path, "m", VALUES)
        write_rows(tmp_path / paths["index_to_metric_path"], rows, np.uint8)
        with pytest.raises(ValueError, match=match):
            MetricIndex("m", metric_config("value", **paths), 20, tmp_path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            MetricIndex("m", metric_config("percentile", index_to_sample_path="nope"), 20,
                        tmp_path)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64])
def test_shuffle_in_place_is_rng_shuffle_permutation_and_generator_state(dtype):
    ids = np.arange(5_001, dtype=dtype)
    expected = ids.copy()
    ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
    shuffle_in_place(ids, ours)
    theirs.shuffle(expected)
    assert ids.dtype == dtype and np.array_equal(ids, expected)
    assert not np.array_equal(ids, np.arange(5_001))
    assert ours.bit_generator.state == theirs.bit_generator.state
