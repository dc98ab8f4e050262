"""The data analyzer: DeepSpeed 0.19.8's files for the fixture dataset byte for byte,
independent cases computed here from the spec (§3.1-3.2), multi-worker map + one reduce
equal to one worker, DeepSpeed's document indexes for num_threads_reduce > 1, and the
streaming reduce (tiny blocks, one value larger than a block)."""

from __future__ import annotations

import doctest
import inspect
import itertools
import os
import pathlib
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    DataAnalyzer,
    MMapIndexedDataset,
    _analyzer,
    _analyzer_map,
    _index_writer,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "deepspeed_index_files" / "analysis"
N = 64
IDS = np.arange(N)
# The fixtures' dataset: item i = int64 [i, a(i), b(i), i % 5].
DATA = np.stack([IDS, 8 + (37 * IDS) % 57, (13 * IDS) % 17, IDS % 5], axis=1).astype(np.int64)
SINGLE, ACCUMULATE = "single_value_per_sample", "accumulate_value_over_samples"
KINDS = ("sample_to_metric", "index_to_metric", "index_to_sample",
         "index_to_sample_percentile_merged")


def column(k):
    return lambda batch: batch[:, k]


def fixture_args(save_path, **overrides):
    """The README's analyzer call: metrics a, b (columns 1, 2) and hist, batch size 8."""
    args = dict(metric_names=["a", "b", "hist"],
                metric_functions=[column(1), column(2),
                                  lambda batch: np.bincount(batch[:, 3], minlength=5)],
                metric_types=[SINGLE, SINGLE, ACCUMULATE], metric_dtypes=[np.int64] * 3,
                save_path=str(save_path), batch_size=8)
    args.update(overrides)
    return args


def run_all_workers(dataset, **args):
    for worker in range(args.get("num_workers", 1)):
        DataAnalyzer(dataset, **dict(args, worker_id=worker)).run_map()
    DataAnalyzer(dataset, **dict(args, worker_id=0)).run_reduce()


def output_bytes(save_path, names):
    """{file name: bytes} of every output pair (not the per-shard directories)."""
    found = {}
    for name in names:
        for path in sorted(pathlib.Path(save_path, name).glob(f"{name}_*")):
            found[path.name] = path.read_bytes()
    return found


def fixture_bytes():
    return {p.name: p.read_bytes() for p in sorted(FIXTURES.rglob("*.*"))}


class ItemDataset:
    """An AlgoPerf-style indexable dataset: item i is DATA[i]."""

    def __len__(self):
        return N

    def __getitem__(self, i):
        return DATA[i]


def test_module_examples_run():
    for module in (_analyzer, _analyzer_map):
        assert doctest.testmod(module).failed == 0


def test_keyword_names_and_defaults_are_deepspeeds():
    params = inspect.signature(DataAnalyzer).parameters
    defaults = {"num_workers": 1, "worker_id": 0, "num_threads": 1, "num_threads_reduce": 1,
                "specific_threads": None, "batch_size": 1, "collate_fn": None,
                "sample_indices": None, "custom_map_init": None, "custom_map_update": None,
                "custom_map_finalize": None, "custom_reduce": None}
    assert {k: params[k].default for k in defaults} == defaults
    for k in ("metric_names", "metric_functions", "metric_types", "metric_dtypes", "save_path"):
        assert params[k].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[k].default is inspect.Parameter.empty


class TestDeepSpeedFixtureBytes:
    @pytest.mark.parametrize("overrides", [
        {},
        {"num_workers": 2, "num_threads": 3},
        {"num_workers": 4, "batch_size": 5, "block_size": 3},
        {"num_threads": 2, "specific_threads": []},
        {"batch_size": 64},
    ], ids=["as_recorded", "2x3_shards", "4_workers_tiny_blocks", "threads", "one_batch"])
    def test_same_bytes_as_deepspeed(self, tmp_path, overrides):
        run_all_workers(DATA, **fixture_args(tmp_path, **overrides))
        assert output_bytes(tmp_path, ["a", "b", "hist"]) == fixture_bytes()

    @pytest.mark.parametrize("dataset", [
        ItemDataset(), np.memmap, {"cols": DATA},
    ], ids=["items", "memmap", "columns"])
    def test_every_dataset_kind(self, tmp_path, dataset):
        args = fixture_args(tmp_path / "out")
        if dataset is np.memmap:
            np.save(tmp_path / "data.npy", DATA)
            dataset = np.load(tmp_path / "data.npy", mmap_mode="r")
        elif isinstance(dataset, dict):
            args["metric_functions"] = [
                lambda b: b["cols"][:, 1], lambda b: b["cols"][:, 2],
                lambda b: np.bincount(b["cols"][:, 3], minlength=5)]
        DataAnalyzer(dataset, **args).run_map_reduce()
        assert output_bytes(tmp_path / "out", ["a", "b", "hist"]) == fixture_bytes()

    def test_only_deepspeeds_files_and_the_shard_directories(self, tmp_path):
        DataAnalyzer(DATA, **fixture_args(tmp_path, num_threads=2)).run_map_reduce()
        assert sorted(os.listdir(tmp_path / "a")) == sorted(
            [f"a_{k}.{s}" for k in KINDS for s in ("bin", "idx")]
            + ["worker0_thread0", "worker0_thread1"])
        assert sorted(os.listdir(tmp_path / "hist")) == [
            "hist_metric_value.bin", "hist_metric_value.idx", "worker0_thread0",
            "worker0_thread1"]

    @pytest.mark.parametrize("reduce_parts, workers, threads", [(2, 1, 1), (3, 2, 2), (5, 1, 3)])
    def test_doc_index_follows_deepspeeds_reduce_parts(self, tmp_path, reduce_parts, workers,
                                                       threads):
        run_all_workers(DATA, **fixture_args(tmp_path, num_workers=workers, num_threads=threads,
                                             num_threads_reduce=reduce_parts))
        found, recorded = output_bytes(tmp_path, ["a", "b", "hist"]), fixture_bytes()
        for name, data in recorded.items():
            if name.endswith(".bin") or "merged" in name or "metric_value" in name:
                assert found[name] == data, name  # no reduce parts in these
                continue
            head = struct.unpack_from("<9sQBQQ", data)
            rows = head[3]
            if "sample_to_metric" in name:  # parts of the (worker, thread) shards
                edges = np.linspace(0, N, workers + 1, dtype=int)
                bounds = [int(e) for a, b in itertools.pairwise(edges)
                          for e in np.linspace(a, b, threads + 1, dtype=int)[1:]]
                parts = np.linspace(0, workers * threads, reduce_parts + 1, dtype=int)
                ends = [0 if p == 0 else bounds[p - 1] for p in parts[1:]]
            else:  # parts of the distinct values
                ends = np.linspace(0, rows, reduce_parts + 1, dtype=int)[1:].tolist()
            doc = [0, *ends, rows]
            expect = (struct.pack("<9sQBQQ", *head[:4], len(doc)) + data[34: 34 + 12 * rows]
                      + struct.pack(f"<{len(doc)}q", *doc))
            assert found[name] == expect, name


def expected(values, ids):
    """DeepSpeed's arrays for values and ids in iteration order, computed directly."""
    distinct = sorted(set(values))
    by_value = [[i for v, i in zip(values, ids, strict=True) if v == d] for d in distinct]
    step = max(1, len(distinct) // 100)
    merged = [[i for row in by_value[g: g + step] for i in row]
              for g in range(0, len(distinct), step)]
    return {"sample_to_metric": [[v] for v in values], "index_to_metric": [[d] for d in distinct],
            "index_to_sample": by_value, "index_to_sample_percentile_merged": merged}


def read_outputs(save_path, name):
    return {k: MMapIndexedDataset(DataAnalyzer.output_prefix(save_path, name, k))
            for k in KINDS}


class TestIndependentCases:
    @pytest.mark.parametrize("low, high, n, value_dtype, id_dtype", [
        (-3, 200, 700, "int16", "uint16"),  # negative values, > 255 samples
        (0, 255, 300, "uint8", "uint16"),
        (1000, 70000, 250, "uint32", "uint8"),
        (-(2**40), 2**40, 90, "int64", "uint8"),
    ])
    def test_arrays_and_dtypes(self, tmp_path, low, high, n, value_dtype, id_dtype):
        rng = np.random.default_rng(n)
        # Few distinct values repeated, plus the two ends, so every dtype boundary is hit.
        pool = np.concatenate([[low, high], rng.integers(low, high, size=260)])
        values = rng.choice(pool, size=n)
        values[:2] = low, high
        DataAnalyzer(values.reshape(n, 1), metric_names=["m"], metric_functions=[column(0)],
                     metric_types=[SINGLE], metric_dtypes=[np.int64], save_path=str(tmp_path),
                     batch_size=7).run_map_reduce()
        found = read_outputs(tmp_path, "m")
        want = expected(values.tolist(), list(range(n)))
        for kind in KINDS:
            assert [r.tolist() for r in found[kind]] == want[kind], kind
        assert found["sample_to_metric"].dtype == np.dtype(value_dtype)
        assert found["index_to_metric"].dtype == np.dtype(value_dtype)
        assert found["index_to_sample"].dtype == np.dtype(id_dtype)
        assert found["index_to_sample_percentile_merged"].dtype == np.dtype(id_dtype)

    def test_percentile_rows_merge_values_in_groups(self, tmp_path):
        values = np.arange(250)[::-1].repeat(2)  # 250 distinct values: groups of 2
        DataAnalyzer(values[:, None], metric_names=["m"], metric_functions=[column(0)],
                     metric_types=[SINGLE], metric_dtypes=[np.int64],
                     save_path=str(tmp_path), batch_size=64).run_map_reduce()
        merged = read_outputs(tmp_path, "m")["index_to_sample_percentile_merged"]
        assert len(merged) == 125 and merged.doc_idx.tolist() == [0, 125]
        assert merged[0].tolist() == [498, 499, 496, 497]  # values 0 then 1

    def test_sample_indices_and_index_field(self, tmp_path):
        rng = np.random.default_rng(3)
        values = rng.integers(0, 6, size=40)
        order = rng.permutation(40) + 1000  # ids beyond N - 1: stored in uint16
        DataAnalyzer(values[:, None], metric_names=["m"], metric_functions=[column(0)],
                     metric_types=[SINGLE], metric_dtypes=[np.int64],
                     save_path=str(tmp_path / "si"), batch_size=6,
                     sample_indices=order).run_map_reduce()
        found = read_outputs(tmp_path / "si", "m")
        want = expected(values.tolist(), order.tolist())
        assert [r.tolist() for r in found["index_to_sample"]] == want["index_to_sample"]
        assert found["index_to_sample"].dtype == np.uint16
        assert [r.tolist() for r in found["sample_to_metric"]] == want["sample_to_metric"]
        # A dict batch's "index" field wins over sample_indices (batch["index"][row][0]).
        records = {"value": values, "index": np.stack([order - 1000, order], axis=1)}
        DataAnalyzer(records, metric_names=["m"], metric_functions=[lambda b: b["value"]],
                     metric_types=[SINGLE], metric_dtypes=[np.int64],
                     save_path=str(tmp_path / "ix"), batch_size=6,
                     sample_indices=order).run_map_reduce()
        found = read_outputs(tmp_path / "ix", "m")
        assert [r.tolist() for r in found["index_to_sample"]] == expected(
            values.tolist(), (order - 1000).tolist())["index_to_sample"]
        assert found["index_to_sample"].dtype == np.uint8

    def test_accumulated_metric_sums_every_batch(self, tmp_path):
        rng = np.random.default_rng(4)
        tokens = rng.integers(0, 9, size=(53, 5))
        DataAnalyzer(tokens, metric_names=["h", "neg"],
                     metric_functions=[lambda b: np.bincount(b.ravel(), minlength=9),
                                       lambda b: -b.sum(axis=0, dtype=np.int32)],
                     metric_types=[ACCUMULATE] * 2, metric_dtypes=[np.int64, np.int32],
                     save_path=str(tmp_path), batch_size=10, num_workers=1,
                     num_threads=3).run_map_reduce()
        hist = MMapIndexedDataset(DataAnalyzer.output_prefix(tmp_path, "h", "metric_value"))
        assert [r.tolist() for r in hist] == [np.bincount(tokens.ravel(), minlength=9).tolist()]
        assert hist.dtype == np.uint8 and hist.doc_idx.tolist() == [0, 1]
        neg = MMapIndexedDataset(DataAnalyzer.output_prefix(tmp_path, "neg", "metric_value"))
        assert neg[0].tolist() == (-tokens.sum(axis=0)).tolist() and neg.dtype == np.int16

    def test_narrow_declared_dtypes_and_column_results(self, tmp_path):
        values = np.array([3, 1, 3, 2], np.uint16)
        DataAnalyzer(values[:, None], metric_names=["m"],
                     metric_functions=[lambda b: b],  # shape (n, 1), as DeepSpeed allows
                     metric_types=[SINGLE], metric_dtypes=["uint16"],
                     save_path=str(tmp_path), batch_size=3).run_map_reduce()
        found = read_outputs(tmp_path, "m")
        assert [r.tolist() for r in found["index_to_sample"]] == [[1], [3], [0, 2]]
        assert found["sample_to_metric"].dtype == np.uint8


class TestWorkersAndStreaming:
    def test_many_workers_equal_one(self, tmp_path):
        rng = np.random.default_rng(5)
        values = rng.integers(-50, 50, size=(1001, 2))
        args = dict(metric_names=["x", "y", "s"],
                    metric_functions=[column(0), column(1), lambda b: b.sum(axis=0)],
                    metric_types=[SINGLE, SINGLE, ACCUMULATE], metric_dtypes=[np.int64] * 3,
                    batch_size=13)
        run_all_workers(values, save_path=str(tmp_path / "one"), **args)
        run_all_workers(values, save_path=str(tmp_path / "many"), num_workers=3, num_threads=4,
                        block_size=17, **args)
        one = output_bytes(tmp_path / "one", ["x", "y", "s"])
        assert output_bytes(tmp_path / "many", ["x", "y", "s"]) == one and len(one) == 18

    def test_worker_processes_then_one_reduce(self, tmp_path):
        rng = np.random.default_rng(6)
        np.save(tmp_path / "data.npy", rng.integers(0, 30, size=(500, 1)))
        script = (
            "import sys, numpy as np\n"
            "from algoperf_reinit.data_efficiency import DataAnalyzer\n"
            f"data = np.load({str(tmp_path / 'data.npy')!r}, mmap_mode='r')\n"
            "DataAnalyzer(data, metric_names=['m'], metric_functions=[lambda b: b[:, 0]],\n"
            "             metric_types=['single_value_per_sample'], metric_dtypes=['int64'],\n"
            f"             save_path={str(tmp_path / 'out')!r}, batch_size=32, num_workers=2,\n"
            "             worker_id=int(sys.argv[1])).run_map()\n")
        env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]))
        workers = [subprocess.Popen([sys.executable, "-c", script, str(w)], env=env)
                   for w in (1, 0)]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
        data = np.load(tmp_path / "data.npy")
        args = dict(metric_names=["m"], metric_functions=[column(0)], metric_types=[SINGLE],
                    metric_dtypes=[np.int64], batch_size=32)
        DataAnalyzer(data, save_path=str(tmp_path / "out"), num_workers=2, **args).run_reduce()
        DataAnalyzer(data, save_path=str(tmp_path / "ref"), **args).run_map_reduce()
        assert output_bytes(tmp_path / "out", ["m"]) == output_bytes(tmp_path / "ref", ["m"])

    def test_a_value_larger_than_a_block_and_many_buckets(self, tmp_path):
        rng = np.random.default_rng(7)
        values = rng.integers(0, 40, size=900)
        values[rng.random(900) < 0.5] = 17  # one value holds ~half the samples
        args = dict(metric_names=["m"], metric_functions=[column(0)], metric_types=[SINGLE],
                    metric_dtypes=[np.int64], batch_size=50, num_threads_reduce=3)
        run_all_workers(values[:, None], save_path=str(tmp_path / "big"), num_workers=2,
                        **args)
        run_all_workers(values[:, None], save_path=str(tmp_path / "tiny"), block_size=8,
                        num_workers=2, **args)
        assert output_bytes(tmp_path / "tiny", ["m"]) == output_bytes(tmp_path / "big", ["m"])
        found = read_outputs(tmp_path / "tiny", "m")
        assert [r.tolist() for r in found["index_to_sample"]] == expected(
            values.tolist(), list(range(900)))["index_to_sample"]
        assert not [p for p in (tmp_path / "tiny" / "m").iterdir() if "reduce" in p.name]

    def test_specific_threads_and_reduce_on_other_workers(self, tmp_path):
        args = fixture_args(tmp_path, num_threads=3)
        for thread in (2, 0, 1):
            DataAnalyzer(DATA, specific_threads=[thread], **args).run_map()
        DataAnalyzer(DATA, **dict(args, num_workers=2, worker_id=1)).run_reduce()  # no-op
        assert output_bytes(tmp_path, ["a", "b", "hist"]) == {}
        DataAnalyzer(DATA, **args).run_reduce()
        assert output_bytes(tmp_path, ["a", "b", "hist"]) == fixture_bytes()

    def test_reduce_memory_does_not_grow_with_the_dataset(self, tmp_path, monkeypatch):
        monkeypatch.setattr(_index_writer, "_BLOCK", 4096)  # the writer's blocks, too
        peaks = []
        for n in (20_000, 200_000):
            values = np.random.default_rng(n).integers(0, 500, size=(n, 1))
            analyzer = DataAnalyzer(values, metric_names=["m"], metric_functions=[column(0)],
                                    metric_types=[SINGLE], metric_dtypes=[np.int64],
                                    save_path=str(tmp_path / str(n)), batch_size=1000,
                                    block_size=4096)
            tracemalloc.start()
            analyzer.run_map_reduce()
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert peaks[1] < 1.5 * peaks[0] + 200_000, peaks  # 10x the samples

    def test_progress_reports(self, tmp_path, caplog):
        reports = []
        DataAnalyzer(DATA, progress=reports.append, log_every=20,
                     **fixture_args(tmp_path / "cb", num_threads=2)).run_map()
        assert sorted((r.thread_id, r.processed, r.total) for r in reports) == [
            (0, 24, 32), (0, 32, 32), (1, 24, 32), (1, 32, 32)]
        every = []
        DataAnalyzer(DATA, progress=every.append, **fixture_args(tmp_path / "all")).run_map()
        assert [r.processed for r in every] == list(range(8, 65, 8))
        with caplog.at_level("INFO", logger="algoperf_reinit.data_efficiency"):
            DataAnalyzer(DATA, log_every=32, **fixture_args(tmp_path / "log")).run_map()
        assert [r.getMessage() for r in caplog.records][:2] == [
            f"data analyzer map: worker 0 thread 0: {k} of 64 samples in "
            f"{r.args[-1]:.1f} s" for k, r in zip((32, 64), caplog.records, strict=False)]


@pytest.mark.benchmark  # ``pytest -m "not benchmark"`` skips it
def test_benchmark_quick_mode_runs():
    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "curriculum_analyzer.py"),
                           "--quick"], capture_output=True, text=True, env=env, cwd=root,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"$ {sys.executable} ") and "--quick" in lines[0]
    assert "mode quick" in lines[2]
    assert sum(line.startswith("| seqlen") for line in lines) == 4
    assert any(line.startswith("| 1,000,000 |") for line in lines)
    assert any("concatenated() of the first half" in line for line in lines)
