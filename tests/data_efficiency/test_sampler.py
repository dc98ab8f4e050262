"""DeepSpeedDataSampler: DeepSpeed's recorded streams and cluster files, the oracle on
other configurations, stream invariants, determinism, epoch-end counts, data-parallel
sharding and non-writing processes.

Expected streams come from DeepSpeed 0.19.8's recordings (``fixtures/``) or from the
plain-loop oracle of ``test_sampler_reference`` (itself checked against them); counts
from the spec's formulas (§3.6), computed here.
"""

from __future__ import annotations

import doctest
import itertools
import json
import math
import os

import numpy as np
import pytest

from algoperf_reinit import data_efficiency
from algoperf_reinit.data_efficiency import (
    DeepSpeedDataSampler,
    _clusters,
    _intersection,
    _sampler,
    _sampler_restore,
    _sampler_state,
    _sampler_throughput,
    _selection,
    parse_data_efficiency_config,
)
from tests.data_efficiency.test_sampler_reference import (
    CASES,
    FIXTURE_VALUES,
    FIXTURES,
    N,
    ReferenceSampler,
    config,
    copy_analysis,
    metric,
    write_index,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*not a multiple of 8",
                                        "ignore:.*wraps only once")
A_PATHS = {"index_to_sample_path": "analysis/a/a_index_to_sample",
           "index_to_metric_path": "analysis/a/a_index_to_metric"}
B_PATHS = {"index_to_sample_path": "analysis/b/b_index_to_sample",
           "index_to_metric_path": "analysis/b/b_index_to_metric"}


def case_sampler(tmp_path, name, **kwargs):
    case = CASES[name]
    copy_analysis(tmp_path)
    return DeepSpeedDataSampler(
        config(case["metrics"], case["seed"]), N, case["micro_batch_size"], 0,
        case["dp_size"], case["gradient_accumulation_steps"], base_path=tmp_path, **kwargs)


def take(sampler, count):
    return [b.tolist() for b in itertools.islice(iter(sampler), count)]


def test_module_examples_run():
    for module in (_sampler, _clusters, _intersection, _selection, _sampler_state,
                   _sampler_restore, _sampler_throughput):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_public_names():
    assert "DeepSpeedDataSampler" in data_efficiency.__all__
    assert data_efficiency.DeepSpeedDataSampler is DeepSpeedDataSampler


class TestDeepSpeedRecordedStreams:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_every_micro_batch_and_its_state(self, tmp_path, name):
        case = CASES[name]
        sampler = case_sampler(tmp_path, name)
        assert len(sampler) == case["len"]
        stream = iter(sampler)
        for record in case["micro_batches"]:
            assert sampler.consumed_samples == record["consumed_samples_before_this_micro_batch"]
            assert next(stream).tolist() == record["micro_batch"]
            assert sampler.curriculum_step == record["curriculum_step"]
            assert sampler.current_difficulties == record["current_difficulties"]
            assert sampler.data_cluster_sizes == record["cluster_sizes"]
            assert sampler.data_cluster_current_position == record["cluster_positions"]

    @pytest.mark.parametrize("name", sorted(CASES))
    def test_cluster_files_are_deepspeeds_bytes(self, tmp_path, name):
        # The fixture directories hold DeepSpeed's cluster files after 24 micro-batches.
        case = CASES[name]
        sampler = case_sampler(tmp_path, name)
        take(sampler, 24)
        written = sorted(os.listdir(tmp_path / "clusters"))
        assert written == case["cluster_files"]
        reference = FIXTURES / "deepspeed_index_files" / f"clusters_{name}"
        for file in written:
            assert (tmp_path / "clusters" / file).read_bytes() == (reference / file
                                                                   ).read_bytes(), file
        # Creation order is also the recorded (alphabetical) order in both cases.
        assert sampler.data_cluster_paths == [f[:-4] for f in case["cluster_files"][::2]]

    def test_config_as_a_dict_a_whole_config_a_json_path_or_parsed(self, tmp_path):
        case = CASES["value_single_metric_linear"]
        expected = [r["micro_batch"] for r in case["micro_batches"][:8]]
        copy_analysis(tmp_path)
        block = config(case["metrics"])
        path = tmp_path / "ds_config.json"
        path.write_text(json.dumps({"train_batch_size": 8, "data_efficiency": block}))
        # From the second run on, the directory holds the previous run's (stale) files.
        for cfg in (block, {"train_micro_batch_size_per_gpu": 4, "data_efficiency": block},
                    str(path), path, parse_data_efficiency_config(block)):
            sampler = DeepSpeedDataSampler(cfg, N, 4, 0, 1, 2, base_path=tmp_path)
            assert take(sampler, 8) == expected

    def test_stream_is_the_same_without_files(self, tmp_path):
        sampler = case_sampler(tmp_path, "two_clustering_metrics_intersection",
                               write_clusters=False)
        expected = [r["micro_batch"] for r in
                    CASES["two_clustering_metrics_intersection"]["micro_batches"]]
        assert take(sampler, len(expected)) == expected
        assert not (tmp_path / "clusters").exists()


def oracle_pair(tmp_path, metrics, values, n=N, micro=4, dp=1, gas=2, seed=1234, rank=0,
                custom=None, drop_last=True, options=None, num_epochs=1000):
    """(ours, oracle) for ``metrics`` over index files written from ``values``."""
    for name, v in values.items():
        metrics[name].update(write_index(tmp_path, name, v))
    options = options or {}
    ours = DeepSpeedDataSampler(config(metrics, seed, num_epochs=num_epochs), n, micro, rank,
                                dp, gas, drop_last, base_path=tmp_path, **options)
    if custom:
        ours.set_custom_curriculum_learning_schedule(custom)
    ref = ReferenceSampler(metrics, values, n, micro, dp, gas, seed, num_epochs, rank,
                           drop_last, wrap_all=options.get("wrap_small_clusters", False),
                           empty_is_empty=options.get("empty_selection_is_empty", False),
                           custom=custom)
    return ours, ref


def assert_same_stream(ours, ref, count):
    got, expected = take(ours, count), list(itertools.islice(iter(ref), count))
    assert got == expected
    assert ours.data_cluster_paths == ref.names
    assert ours.data_cluster_current_position == ref.positions
    for c, ids in enumerate(ref.clusters):
        assert ours.cluster_ids(c).tolist() == ids


RNG = np.random.default_rng(0)
LENGTHS = RNG.integers(1, 200, size=300)  # a seqlen-like metric with ties, N = 300
RARITY = RNG.integers(0, 1000, size=300)


class TestAgainstTheOracle:
    def test_percentile_single_metric(self, tmp_path):
        metrics = {"len": metric("percentile", lo=10, hi=100, total=30, step=5)}
        ours, ref = oracle_pair(tmp_path, metrics, {"len": LENGTHS}, n=300)
        assert_same_stream(ours, ref, 120)

    def test_value_single_metric_root_schedule(self, tmp_path):
        metrics = {"len": metric(lo=8, hi=200, total=40, step=8, schedule_type="fixed_root",
                                 schedule_config={"total_curriculum_step": 40,
                                                  "difficulty_step": 8, "root_degree": 2})}
        ours, ref = oracle_pair(tmp_path, metrics, {"len": LENGTHS}, n=300, micro=8, gas=3)
        assert_same_stream(ours, ref, 100)

    def test_value_and_percentile_with_a_single_cluster_metric(self, tmp_path):
        # Three metrics, two clustering ones: the intersection path with arange(N).
        metrics = {"seqlen_truncate": metric(clustering="single_cluster", lo=8, hi=64,
                                             total=7, step=8),
                   "len": metric(lo=40, hi=200, total=25, step=8),
                   "rarity": metric("percentile", lo=20, hi=100, total=15, step=10)}
        ours, ref = oracle_pair(tmp_path, {k: dict(v) for k, v in metrics.items()},
                                {"len": LENGTHS, "rarity": RARITY}, n=300, micro=5, dp=2)
        assert_same_stream(ours, ref, 80)

    def test_single_cluster_metric_changes_alone_add_no_cluster(self, tmp_path):
        # One clustering metric at its max while seqlen_truncate keeps changing: the
        # incremental bands are empty, except the percentile remainder DeepSpeed adds.
        metrics = {"rarity": metric("percentile", lo=50, hi=100, total=2, step=50),
                   "seqlen_truncate": metric(clustering="single_cluster", lo=8, hi=64,
                                             total=20, step=8)}
        ours, ref = oracle_pair(tmp_path, metrics, {"rarity": RARITY[:203]}, n=203)
        assert_same_stream(ours, ref, 60)
        assert ours.data_cluster_sizes == [len(c) for c in ref.clusters]
        # per = 203 // 100 = 2: [0, 100), then [100, 203), then the remainder [200, 203).
        assert ours.data_cluster_sizes[:3] == [100, 103, 3]

    def test_no_clustering_metric_is_one_cluster_of_every_id(self, tmp_path):
        metrics = {"seqlen_truncate": metric(clustering="single_cluster", lo=8, hi=64,
                                             total=10, step=8)}
        ours, ref = oracle_pair(tmp_path, metrics, {}, n=37, micro=3, gas=5)
        assert_same_stream(ours, ref, 60)
        assert ours.data_cluster_sizes == [37]

    def test_custom_schedule_receives_the_curriculum_step(self, tmp_path):
        seen = []

        def schedule(step):
            seen.append(step)
            return min(16 + 4 * step, 64)

        metrics = {"a": metric(lo=16, hi=64, schedule_type="custom")}
        del metrics["a"]["schedule_config"]
        ours, ref = oracle_pair(tmp_path, metrics, {"a": FIXTURE_VALUES["a"]},
                                custom={"a": schedule})
        assert_same_stream(ours, ref, 30)
        assert seen[:3] == [1, 2, 3]

    @pytest.mark.parametrize("seed", [0, 7, 2**40])
    def test_other_seeds(self, tmp_path, seed):
        metrics = {"a": metric(paths=None), "b": metric("percentile", lo=4, hi=16, step=4)}
        ours, ref = oracle_pair(tmp_path, metrics, dict(FIXTURE_VALUES), seed=seed)
        assert_same_stream(ours, ref, 40)


def eligible(values, kind, difficulty, hi):
    """Ids within ``difficulty`` (spec §3.3): value ``<= d``; percentile first per*d."""
    if kind == "value":
        return set(np.flatnonzero(values <= difficulty).tolist())
    order = np.argsort(values, kind="stable")
    count = len(values) if difficulty == hi else (len(values) // hi) * difficulty
    return set(order[:count].tolist())


class TestStreamInvariants:
    @pytest.mark.parametrize("name", sorted(CASES))
    def test_ids_are_eligible_and_global_batches_full(self, tmp_path, name):
        case = CASES[name]
        sampler = case_sampler(tmp_path, name)
        for _ in range(40):
            batch = sampler.get_next_global_batch()
            assert batch.shape == (sampler.global_batch_size,) and batch.dtype == np.int64
            assert 0 <= batch.min() and batch.max() < N
            for m, d in sampler.current_difficulties.items():
                cfg = case["metrics"][m]
                allowed = eligible(FIXTURE_VALUES[m], cfg["difficulty_type"], d,
                                   cfg["max_difficulty"])
                assert set(batch.tolist()) <= allowed

    def test_micro_batches_are_int64_arrays(self, tmp_path):
        batch = next(iter(case_sampler(tmp_path, "value_single_metric_linear")))
        assert isinstance(batch, np.ndarray) and batch.dtype == np.int64 and batch.shape == (4,)

    def test_same_seed_same_stream_other_seed_other_stream(self, tmp_path):
        one = case_sampler(tmp_path / "1", "two_clustering_metrics_intersection")
        two = case_sampler(tmp_path / "2", "two_clustering_metrics_intersection")
        assert take(one, 50) == take(two, 50)
        case = CASES["value_single_metric_linear"]
        copy_analysis(tmp_path / "3")
        other = DeepSpeedDataSampler(config(case["metrics"], seed=1235), N, 4, 0, 1, 2,
                                     base_path=tmp_path / "3")
        assert take(other, 50) != [r["micro_batch"] for r in case["micro_batches"]][:50]

    def test_data_cluster_path_none_when_every_metric_is_single_cluster(self, tmp_path,
                                                                         monkeypatch):
        monkeypatch.chdir(tmp_path)
        metrics = {"seqlen_truncate": metric(clustering="single_cluster")}
        sampler = DeepSpeedDataSampler(config(metrics, cluster_path=None), 10, 2, 0, 1, 1)
        assert sorted(itertools.chain.from_iterable(take(sampler, 5))) == list(range(10))
        assert os.listdir(tmp_path) == []

    def test_index_paths_relative_to_the_working_directory(self, tmp_path, monkeypatch):
        copy_analysis(tmp_path)
        monkeypatch.chdir(tmp_path)
        case = CASES["value_single_metric_linear"]
        sampler = DeepSpeedDataSampler(config(case["metrics"]), N, 4, 0, 1, 2)
        assert take(sampler, 4) == [r["micro_batch"] for r in case["micro_batches"][:4]]
        assert (tmp_path / "clusters" / "cluster_a16.bin").exists()


def single_cluster_sampler(n, micro, dp, gas, num_epochs, rank=0, drop_last=True):
    metrics = {"seqlen_truncate": metric(clustering="single_cluster")}
    return DeepSpeedDataSampler(config(metrics, cluster_path=None, num_epochs=num_epochs),
                                n, micro, rank, dp, gas, drop_last)


class TestEpochEnd:
    @pytest.mark.parametrize(("n", "micro_batches", "samples"), [(64, 17, 68), (60, 16, 64)])
    def test_spec_recorded_counts(self, n, micro_batches, samples):
        # Spec §3.6 (recorded): N 64, micro 4, dp 1 gives 17 / 68; N 60 gives 16 / 64.
        sampler = single_cluster_sampler(n, 4, 1, 1, 1)
        stream = [b.tolist() for b in sampler]
        assert (len(stream), sum(map(len, stream))) == (micro_batches, samples)
        assert list(sampler) == []  # the pass is over; a new iter yields nothing

    @pytest.mark.parametrize(("n", "micro", "dp", "gas", "epochs"),
                             [(10, 3, 1, 1, 2), (37, 2, 3, 2, 1), (29, 4, 2, 3, 3)])
    def test_formula(self, n, micro, dp, gas, epochs):
        expected = math.floor(n * epochs / (micro * dp)) + 1
        sampler = single_cluster_sampler(n, micro, dp, gas, epochs)
        assert len(sampler) == n * epochs
        assert sum(1 for _ in sampler) == expected
        assert sampler.consumed_samples == expected * micro * dp


class TestDataParallel:
    @pytest.mark.parametrize("drop_last", [True, False])
    @pytest.mark.parametrize("dp", [2, 3, 4])
    def test_ranks_together_yield_the_global_batch_chunk_by_chunk(self, tmp_path, dp,
                                                                  drop_last):
        # The first clusters of this case are smaller than a global batch of 6 * dp
        # ids, so some global batches come back short (one wrap): their last chunk is
        # dropped, or (drop_last=False) split unevenly by round().
        case = CASES["two_clustering_metrics_intersection"]
        copy_analysis(tmp_path)
        micro, gas = 3, 2

        def make(rank, writer):
            return DeepSpeedDataSampler(config(case["metrics"]), N, micro, rank, dp, gas,
                                        drop_last, base_path=tmp_path, write_clusters=writer)

        reference = make(0, False)
        ranks = [iter(make(r, r == 0)) for r in range(dp)]
        width, uneven = micro * dp, 0
        with pytest.warns(UserWarning, match="wraps only once"):
            for _ in range(12):
                batch = reference.get_next_global_batch().tolist()
                for chunk in (batch[k:k + width] for k in range(0, len(batch), width)):
                    if len(chunk) < width and drop_last:
                        continue
                    parts = [next(stream).tolist() for stream in ranks]
                    assert list(itertools.chain.from_iterable(parts)) == chunk
                    sizes = [round((r + 1) * len(chunk) / dp) - round(r * len(chunk) / dp)
                             for r in range(dp)]
                    assert [len(p) for p in parts] == sizes
                    uneven += len(set(sizes)) > 1
        assert uneven > 0 or drop_last

    def test_rank_stream_matches_the_oracle(self, tmp_path):
        metrics = {"len": metric("percentile", lo=10, hi=100, total=30, step=5)}
        ours, ref = oracle_pair(tmp_path, metrics, {"len": LENGTHS}, n=300, micro=3, dp=4,
                                gas=2, rank=2)
        assert_same_stream(ours, ref, 50)

    @pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 10])
    def test_start_end_rounding(self, length):
        # round() is Python's (half to even), as DeepSpeed's get_start_end_idx.
        for dp in (2, 3, 4):
            for rank in range(dp):
                sampler = single_cluster_sampler(20, 5, dp, 1, 1, rank=rank)
                assert sampler.get_start_end_idx(length) == (round(rank * length / dp),
                                                             round((rank + 1) * length / dp))
        assert single_cluster_sampler(20, 5, 4, 1, 1, rank=3).get_start_end_idx() == (15, 20)

    def test_non_writers_write_nothing_and_yield_the_same(self, tmp_path):
        case = CASES["value_single_metric_linear"]
        copy_analysis(tmp_path)
        cfg = config(case["metrics"])
        writer = DeepSpeedDataSampler(cfg, N, 2, 1, 2, 2, base_path=tmp_path,
                                      write_clusters=True)
        (tmp_path / "other").mkdir()
        copy_analysis(tmp_path / "other")
        reader = DeepSpeedDataSampler(cfg, N, 2, 1, 2, 2, base_path=tmp_path / "other")
        assert take(writer, 40) == take(reader, 40)
        assert os.listdir(tmp_path / "clusters")
        assert not (tmp_path / "other" / "clusters").exists()


class TestThroughputHelpers:
    @pytest.mark.parametrize("metrics", [("seqlen",), ("rarity",), ("seqlen", "rarity"),
                                         ("seqlen_truncate",)])
    def test_synthetic_config_and_measurement(self, tmp_path, metrics):
        cfg = _sampler_throughput.synthetic_curriculum_config(
            tmp_path, 5000, metrics=metrics, total_curriculum_step=50)
        assert list(cfg["data_sampling"]["curriculum_learning"]["curriculum_metrics"]) == \
            list(metrics)
        sampler = DeepSpeedDataSampler(cfg, 5000, 16, 0, 1, 4)
        result = _sampler_throughput.measure_sampler_throughput(sampler, min_ids=6400,
                                                                min_seconds=0.0)
        assert result.ids == 6400 and result.global_batches == 100
        assert result.ids_per_second > 0 and result.clusters == len(sampler.data_cluster_paths)

    def test_unknown_synthetic_metric(self, tmp_path):
        with pytest.raises(ValueError, match="metrics must be one of 'seqlen', 'rarity', "
                                             "'seqlen_truncate', got 'len'"):
            _sampler_throughput.synthetic_curriculum_config(tmp_path, 10, metrics=("len",))
