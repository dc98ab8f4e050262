"""Every error of the data analyzer: arguments at construction, metric results and sample
ids during the map (nothing of a failed shard is kept), and map outputs the reduce
cannot use."""

from __future__ import annotations

import os

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import DataAnalyzer

SINGLE, ACCUMULATE = "single_value_per_sample", "accumulate_value_over_samples"
DATA = np.arange(40, dtype=np.int64).reshape(20, 2)


def args(tmp_path, **overrides):
    base = dict(metric_names=["m"], metric_functions=[lambda b: b[:, 0]],
                metric_types=[SINGLE], metric_dtypes=[np.int64], save_path=str(tmp_path),
                batch_size=4)
    base.update(overrides)
    return base


class TestArguments:
    @pytest.mark.parametrize("overrides, error, message", [
        ({"metric_names": "m"}, TypeError, r"metric_names must be a list, got 'm' of type str"),
        ({"metric_names": []}, ValueError, r"metric_names must be a non-empty list, got \[\]"),
        ({"metric_types": [SINGLE, SINGLE]}, ValueError,
         r"len\(metric_types\) must be len\(metric_names\) = 1, got 2"),
        ({"metric_names": ["a/b"]}, ValueError,
         r"metric_names\[0\] must be a non-empty file name \(no path separator\), got 'a/b'"),
        ({"metric_names": [".."]}, ValueError, r"metric_names\[0\] must be a non-empty file"),
        ({"metric_names": ["m", "m"], "metric_functions": [len, len],
          "metric_types": [SINGLE] * 2, "metric_dtypes": ["int64"] * 2},
         ValueError, r"metric_names\[1\] must be unique, got 'm'"),
        ({"metric_functions": ["f"]}, TypeError,
         r"metric_functions\[0\] must be callable, got 'f' of type str"),
        ({"metric_types": ["single_value_per_samples"]}, ValueError,
         r"metric_types\[0\] must be one of 'single_value_per_sample', "
         r"'accumulate_value_over_samples', got 'single_value_per_samples'; did you mean "
         r"'single_value_per_sample'\?"),
        ({"metric_dtypes": [np.float32]}, ValueError,
         r"metric_dtypes\[0\] must be one of uint8, int8, int16, int32, int64, uint16, uint32, "
         r"uint64, got 'float32'"),
        ({"num_workers": 0}, ValueError, r"num_workers must be an int >= 1, got 0"),
        ({"num_workers": 2, "worker_id": 2}, ValueError,
         r"worker_id must be an int in \[0, 1\], got 2"),
        ({"num_threads": 2, "specific_threads": [2]}, ValueError,
         r"specific_threads\[0\] must be an int in \[0, 1\], got 2"),
        ({"num_threads": 2, "specific_threads": [1, 1]}, ValueError,
         r"specific_threads must be distinct thread ids, got \[1, 1\]"),
        ({"num_threads_reduce": 0}, ValueError, r"num_threads_reduce must be an int >= 1"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an int >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, r"batch_size must be an int, got 2.0 of type float"),
        ({"block_size": 0}, ValueError, r"block_size must be an int >= 1, got 0"),
        ({"log_every": 0}, ValueError, r"log_every must be an int >= 1, got 0"),
        ({"progress": 1}, TypeError, r"progress must be callable or None, got 1 of type int"),
        ({"collate_fn": 1}, TypeError, r"collate_fn must be callable or None, got 1"),
        ({"batch_by_slice": 1}, TypeError, r"batch_by_slice must be a bool \(True or False\)"),
        ({"save_path": None}, TypeError,
         r"save_path must be an instance of str or PathLike, got None of type NoneType"),
        ({"sample_indices": np.arange(3)}, ValueError,
         r"len\(sample_indices\) must be len\(dataset\) = 20, got 3"),
        ({"custom_reduce": print}, ValueError,
         r"custom_reduce must be None: DeepSpeed's custom map/reduce hooks are not supported, "
         r"got <built-in function print>; compute the metric in metric_functions instead"),
    ])
    def test_rejected_with_the_rule(self, tmp_path, overrides, error, message):
        with pytest.raises(error, match=message):
            DataAnalyzer(DATA, **args(tmp_path, **overrides))

    @pytest.mark.parametrize("dataset, error, message", [
        (np.zeros((0, 2), int), ValueError, r"len\(dataset\) must be >= 1, got 0"),
        (np.array(3), ValueError, r"dataset.shape must be \(samples, \.\.\.\): at least one "
                                  r"axis, got \(\)"),
        (3, TypeError, r"dataset must be a NumPy array, a dict of arrays, or an object with "
                       r"__len__ and __getitem__, got 3 of type int"),
        ({"x": np.zeros(3), "y": np.zeros(4)}, ValueError,
         r"dataset must be a dict of arrays with one leading length, got \{'x': 3, 'y': 4\}; "
         r"a columnar dataset maps each key"),
        ({"x": 1.0}, ValueError, r"dataset must be a dict of arrays with one leading length"),
    ])
    def test_bad_datasets(self, tmp_path, dataset, error, message):
        with pytest.raises(error, match=message):
            DataAnalyzer(dataset, **args(tmp_path))

    def test_unknown_keyword(self, tmp_path):
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'comm_group'"):
            DataAnalyzer(DATA, comm_group=None, **args(tmp_path))

    def test_output_prefix_kind(self, tmp_path):
        assert DataAnalyzer.output_prefix(tmp_path, "m", "index_to_sample") == os.path.join(
            tmp_path, "m", "m_index_to_sample")
        with pytest.raises(ValueError, match=r"kind must be one of 'sample_to_metric', .*got "
                                             r"'index_to_samples'; did you mean "
                                             r"'index_to_sample'\?"):
            DataAnalyzer.output_prefix(tmp_path, "m", "index_to_samples")


class TestMetricResults:
    def run(self, tmp_path, function, kind=SINGLE, dtype=np.int64, **overrides):
        DataAnalyzer(DATA, **args(tmp_path, metric_functions=[function], metric_types=[kind],
                                  metric_dtypes=[dtype], **overrides)).run_map()

    def test_dtype_mismatch(self, tmp_path):
        with pytest.raises(TypeError, match=r"metric_functions\[0\] \(metric 'm'\) result on "
                                            r"samples \[0, 4\) dtype must be int64, as "
                                            r"metric_dtypes\[0\] declares, got 'int32' of type "
                                            r"str; return .astype\(np.int64\) or declare int32"):
            self.run(tmp_path, lambda b: b[:, 0].astype(np.int32))

    def test_not_an_array(self, tmp_path):
        with pytest.raises(TypeError, match=r"result on samples \[0, 4\) must be a NumPy array, "
                                            r"got \[1, 2, 3, 4\] of type list"):
            self.run(tmp_path, lambda b: [1, 2, 3, 4])

    def test_single_value_shape(self, tmp_path):
        with pytest.raises(ValueError, match=r"result on samples \[0, 4\) shape must be \(4,\) "
                                             r"or \(4, 1\): one value per sample "
                                             r"\(single_value_per_sample\), got \(4, 2\)"):
            self.run(tmp_path, lambda b: b)

    def test_accumulated_shape_changes_on_the_short_last_batch(self, tmp_path):
        # DeepSpeed PR #5147: a per-sample vector "accumulated" breaks on a short batch.
        with pytest.raises(ValueError, match=r"result on samples \[18, 20\) shape must be "
                                             r"\(6,\), the first batch's shape "
                                             r"\(accumulate_value_over_samples\), got \(2,\); an "
                                             r"accumulated metric returns one fixed-shape array"):
            self.run(tmp_path, lambda b: b[:, 0], kind=ACCUMULATE, batch_size=6)

    def test_a_failed_shard_leaves_nothing(self, tmp_path):
        def fails_late(batch):
            if batch[0, 0] >= 16:
                raise RuntimeError("metric failed")
            return batch[:, 0]

        DataAnalyzer(DATA, **args(tmp_path)).run_map()
        with pytest.raises(RuntimeError, match="metric failed"):
            self.run(tmp_path, fails_late)
        assert os.listdir(tmp_path / "m" / "worker0_thread0") == []
        with pytest.raises(FileNotFoundError, match=r"the map output of worker 0 thread 0 for "
                                                    r"metric 'm' is missing \(.*m_map_summary"
                                                    r"\.json\); run run_map\(\) with "
                                                    r"worker_id=0"):
            DataAnalyzer(DATA, **args(tmp_path)).run_reduce()

    def test_a_failing_thread_is_reported(self, tmp_path):
        def fails_in_thread_1(batch):
            if batch[0, 0] >= 20:
                raise RuntimeError("thread 1 failed")
            return batch[:, 0]

        with pytest.raises(RuntimeError, match="thread 1 failed"):
            self.run(tmp_path, fails_in_thread_1, num_threads=2)
        assert os.listdir(tmp_path / "m" / "worker0_thread1") == []


class TestSampleIdsAndItems:
    def test_negative_sample_ids(self, tmp_path):
        with pytest.raises(ValueError, match=r"min\(sample_indices\[0:4\]\) must be >= 0, got -5"):
            DataAnalyzer(DATA, **args(tmp_path, sample_indices=np.arange(20) - 5)).run_map()

    def test_ids_beyond_int64(self, tmp_path):
        ids = np.full(20, 2**63, np.uint64)
        with pytest.raises(ValueError, match=r"max\(sample_indices\[0:4\]\) must be <= 2\*\*63 "
                                             r"- 1, got 9223372036854775808"):
            DataAnalyzer(DATA, **args(tmp_path, sample_indices=ids)).run_map()

    def test_index_field(self, tmp_path):
        records = {"x": DATA[:, 0], "index": np.zeros((20, 1))}
        with pytest.raises(TypeError, match=r"batch\['index'\] of samples \[0, 4\) must be "
                                            r"integer sample ids, got 'float64'"):
            DataAnalyzer(records, **args(tmp_path, metric_functions=[lambda b: b["x"]])).run_map()

    def test_index_field_shape(self, tmp_path):
        class Bad:
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return {"x": np.int64(i), "index": np.arange(3)}

        def collate(items):
            return {"x": np.array([it["x"] for it in items]), "index": np.arange(3)}

        with pytest.raises(ValueError, match=r"batch\['index'\] of samples \[0, 4\)\.shape must "
                                             r"be \(4, \.\.\.\), got \(3,\)"):
            DataAnalyzer(Bad(), **args(tmp_path, collate_fn=collate,
                                       metric_functions=[lambda b: b["x"]])).run_map()

    def test_ragged_items(self, tmp_path):
        ragged = [np.zeros(3, int), np.zeros(2, int)]
        with pytest.raises(ValueError, match=r"dataset items must be one shape for every item "
                                             r"of a batch, got \[\(2,\), \(3,\)\]; pad the items "
                                             r"or pass collate_fn"):
            DataAnalyzer(ragged, **args(tmp_path)).run_map()

    def test_item_keys_differ(self, tmp_path):
        items = [{"x": np.int64(1)}, {"y": np.int64(2)}]
        with pytest.raises(ValueError, match=r"dataset item keys must be the first item's keys "
                                             r"\['x'\], got \['y'\]"):
            DataAnalyzer(items, **args(tmp_path)).run_map()

    def test_batch_by_slice_needs_whole_batches(self, tmp_path):
        class Listy:
            def __len__(self):
                return 6

            def __getitem__(self, key):
                return list(range(6))[key]

        with pytest.raises(ValueError, match=r"dataset\[0:4\] must be an array or a dict of "
                                             r"arrays of 4 rows, got 'list'; batch_by_slice=True "
                                             r"needs slices to return whole batches"):
            DataAnalyzer(Listy(), **args(tmp_path, batch_by_slice=True)).run_map()

    def test_item_datasets_work(self, tmp_path):
        items = [(np.int64(i), np.array([i, -i])) for i in range(10)]
        DataAnalyzer(items, **args(tmp_path, metric_functions=[lambda b: b[1][:, 1]]),
                     ).run_map_reduce()
        prefix = DataAnalyzer.output_prefix(tmp_path, "m", "index_to_metric")
        assert os.path.exists(prefix + ".bin")


class TestReduceInputs:
    def test_missing_worker(self, tmp_path):
        DataAnalyzer(DATA, **args(tmp_path, num_workers=2)).run_map()
        with pytest.raises(FileNotFoundError, match=r"the map output of worker 1 thread 0 for "
                                                    r"metric 'm' is missing .*; run run_map\(\) "
                                                    r"with worker_id=1 \(and the same dataset, "
                                                    r"num_workers and num_threads\) before "
                                                    r"run_reduce\(\)"):
            DataAnalyzer(DATA, **args(tmp_path, num_workers=2)).run_reduce()

    def test_another_split(self, tmp_path):
        DataAnalyzer(DATA, **args(tmp_path, num_threads=2)).run_map()
        with pytest.raises(ValueError, match=r"does not match this analyzer: it has \{'stop': "
                                             r"10\}, expected \{'stop': 20\}"):
            DataAnalyzer(DATA, **args(tmp_path)).run_reduce()

    def test_another_dtype_or_type(self, tmp_path):
        DataAnalyzer(DATA, **args(tmp_path)).run_map()
        with pytest.raises(ValueError, match=r"it has \{'metric_dtype': 'int64'\}, expected "
                                             r"\{'metric_dtype': 'int32'\}"):
            DataAnalyzer(DATA, **args(tmp_path, metric_dtypes=[np.int32])).run_reduce()
        with pytest.raises(ValueError, match=r"it has \{'metric_type': 'single_value_per_sample'"
                                             r"\}, expected \{'metric_type': "
                                             r"'accumulate_value_over_samples'\}"):
            DataAnalyzer(DATA, **args(tmp_path, metric_types=[ACCUMULATE])).run_reduce()

    def test_another_dataset_size(self, tmp_path):
        DataAnalyzer(DATA, **args(tmp_path)).run_map()
        with pytest.raises(ValueError, match=r"expected \{'stop': 19\}"):
            DataAnalyzer(DATA[:19], **args(tmp_path)).run_reduce()

    def test_accumulated_shapes_differ_between_shards(self, tmp_path):
        # Like a bincount without minlength, whose length depends on the data it sees.
        def by_shard(batch):
            return np.zeros(1 + int(batch[0, 0] >= 20), np.int64)

        hist = DataAnalyzer(DATA, **args(tmp_path, metric_types=[ACCUMULATE], num_threads=2,
                                         metric_functions=[by_shard]))
        with pytest.raises(ValueError, match=r"metric 'm': worker 0 thread 1 accumulated shape "
                                             r"\(2,\), the shards before it \(1,\)"):
            hist.run_map_reduce()

    def test_truncated_map_values(self, tmp_path):
        DataAnalyzer(DATA, **args(tmp_path)).run_map()
        path = tmp_path / "m" / "worker0_thread0" / "m_map_values.bin"
        path.write_bytes(path.read_bytes()[:-8])
        with pytest.raises(ValueError, match=r"m_map_values\.bin is truncated: expected 20 "
                                             r"items"):
            DataAnalyzer(DATA, **args(tmp_path)).run_reduce()
