"""DeepSpeed's MMapIndexedDataset format: DeepSpeed 0.19.8's own files read and re-written
byte for byte, header errors, the reader's views, the streaming writer, find_fit_int_dtype.

Expected arrays come from the fixtures' dataset formula (item i = [i, a(i), b(i), i % 5],
a(i) = 8 + (37 i) % 57, b(i) = (13 i) % 17, N = 64), computed here, and the header layout
is decoded here with ``struct`` (spec §3.2), independently of the reader.
"""

from __future__ import annotations

import doctest
import os
import pathlib
import struct

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    DTYPE_CODES,
    IndexedDatasetWriter,
    MMapIndexedDataset,
    _index_files,
    _index_writer,
    find_fit_int_dtype,
    write_rows,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "deepspeed_index_files"
ALL_PREFIXES = sorted(str(p)[:-4] for p in FIXTURES.rglob("*.idx"))
N = 64
IDS = np.arange(N)
A = 8 + (37 * IDS) % 57
B = (13 * IDS) % 17
SPEC_CODES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "uint16",
              7: "uint32", 8: "uint64"}


def parse(prefix: str) -> tuple[int, list[np.ndarray], list[int]]:
    """(dtype code, rows, doc index) of a pair, decoded with struct from the spec's layout."""
    idx = pathlib.Path(prefix + ".idx").read_bytes()
    magic, version, code, rows, docs = struct.unpack_from("<9sQBQQ", idx)
    assert (magic, version) == (b"MMIDIDX\x00\x00", 1)
    sizes = struct.unpack_from(f"<{rows}i", idx, 34)
    pointers = struct.unpack_from(f"<{rows}q", idx, 34 + 4 * rows)
    doc = list(struct.unpack_from(f"<{docs}q", idx, 34 + 12 * rows))
    assert len(idx) == 34 + 12 * rows + 8 * docs
    data = pathlib.Path(prefix + ".bin").read_bytes()
    dtype = np.dtype(SPEC_CODES[code]).newbyteorder("<")
    out = [np.frombuffer(data, dtype, count=s, offset=p) for s, p in zip(sizes, pointers,
                                                                          strict=True)]
    return code, out, doc


def value_rows(metric: np.ndarray) -> tuple[list[int], list[list[int]]]:
    values = sorted(set(metric.tolist()))
    return values, [IDS[metric == v].tolist() for v in values]


def test_module_examples_run():
    for module in (_index_files, _index_writer):
        assert doctest.testmod(module).failed == 0


class TestReadsDeepSpeedFiles:
    @pytest.mark.parametrize("prefix", ALL_PREFIXES, ids=lambda p: os.path.basename(p))
    def test_reader_agrees_with_a_struct_decoding(self, prefix):
        code, rows, doc = parse(prefix)
        ds = MMapIndexedDataset(prefix)
        assert ds.dtype == np.dtype(SPEC_CODES[code])
        assert len(ds) == len(rows)
        assert [r.tolist() for r in ds] == [r.tolist() for r in rows]
        assert ds.doc_idx.tolist() == doc
        ds.validate()

    @pytest.mark.parametrize("metric, column", [("a", A), ("b", B)])
    def test_analysis_files_hold_the_dataset_metric(self, metric, column):
        folder = FIXTURES / "analysis" / metric
        values, samples = value_rows(column)
        s2m = MMapIndexedDataset(folder / f"{metric}_sample_to_metric")
        assert [r.tolist() for r in s2m] == [[int(v)] for v in column]
        assert s2m.dtype == np.uint8 and s2m.doc_idx.tolist() == [0, N, N]
        i2m = MMapIndexedDataset(folder / f"{metric}_index_to_metric")
        assert [r.tolist() for r in i2m] == [[v] for v in values]
        assert i2m.doc_idx.tolist() == [0, len(values), len(values)]
        i2s = MMapIndexedDataset(folder / f"{metric}_index_to_sample")
        assert [r.tolist() for r in i2s] == samples
        assert i2s.dtype == np.uint8 and i2s.doc_idx.tolist() == [0, len(values), len(values)]
        merged = MMapIndexedDataset(folder / f"{metric}_index_to_sample_percentile_merged")
        step = max(1, len(values) // 100)  # 57 and 17 values: one row per value
        expect = [[j for row in samples[i:i + step] for j in row]
                  for i in range(0, len(values), step)]
        assert [r.tolist() for r in merged] == expect
        assert merged.doc_idx.tolist() == [0, len(expect)]
        assert i2s.values.tolist() == [j for row in samples for j in row]
        assert i2s.concatenated(0, 2).tolist() == samples[0] + samples[1]

    def test_accumulated_histogram(self):
        ds = MMapIndexedDataset(FIXTURES / "analysis" / "hist" / "hist_metric_value")
        assert [r.tolist() for r in ds] == [np.bincount(IDS % 5, minlength=5).tolist()]
        assert ds.dtype == np.uint8 and ds.doc_idx.tolist() == [0, 1]

    def test_value_clusters_are_the_difficulty_bands(self):
        folder = FIXTURES / "clusters_value_single_metric_linear"
        previous = -np.inf
        for d in range(16, 65, 8):
            ds = MMapIndexedDataset(folder / f"cluster_a{d}")
            assert ds.dtype == find_fit_int_dtype(0, N) and ds.doc_idx.tolist() == [0, 1]
            assert sorted(ds[0].tolist()) == IDS[(A > previous) & (A <= d)].tolist()
            previous = d

    def test_intersection_clusters(self):
        folder = FIXTURES / "clusters_two_clustering_metrics_intersection"
        order = np.concatenate(value_rows(B)[1])  # b's value-sorted index
        per = N // 16  # percentile metric b, max_difficulty 16
        seen: set[int] = set()
        for da, db in [(16, 4), (24, 4), (32, 8), (40, 8), (48, 12), (56, 12), (64, 16)]:
            b_ids = set(order.tolist() if db == 16 else order[: per * db].tolist())
            expect = (set(IDS[A <= da].tolist()) & b_ids) - seen
            ds = MMapIndexedDataset(folder / f"cluster_a{da}_b{db}")
            assert sorted(ds[0].tolist()) == sorted(expect)
            seen |= expect


class TestWritesDeepSpeedBytes:
    @pytest.mark.parametrize("prefix", ALL_PREFIXES, ids=lambda p: os.path.basename(p))
    def test_rows_and_doc_index_give_the_same_bytes(self, prefix, tmp_path):
        code, rows, doc = parse(prefix)
        out = str(tmp_path / "copy")
        write_rows(out, [r.astype(np.int64) for r in rows], np.dtype(SPEC_CODES[code]),
                   doc_idx=doc)
        for suffix in (".bin", ".idx"):
            assert pathlib.Path(out + suffix).read_bytes() == pathlib.Path(
                prefix + suffix).read_bytes()

    @pytest.mark.parametrize("prefix", ALL_PREFIXES[:8], ids=lambda p: os.path.basename(p))
    def test_streamed_values_and_sizes_give_the_same_bytes(self, prefix, tmp_path,
                                                           monkeypatch):
        monkeypatch.setattr(_index_writer, "_BLOCK", 3)  # several blocks per call
        code, rows, doc = parse(prefix)
        out = str(tmp_path / "copy")
        with IndexedDatasetWriter(out, SPEC_CODES[code]) as writer:
            writer.add_sizes([r.size for r in rows[:doc[1]]])
            writer.write_values(np.concatenate(rows))
            writer.add_sizes([r.size for r in rows[doc[1]:]])
            for _ in doc[1:]:
                writer.end_document()
        for suffix in (".bin", ".idx"):
            assert pathlib.Path(out + suffix).read_bytes() == pathlib.Path(
                prefix + suffix).read_bytes()

    def test_default_doc_index_is_one_document(self, tmp_path):
        write_rows(tmp_path / "c", [[17, 51, 0, 34]], find_fit_int_dtype(0, N))
        fixture = FIXTURES / "clusters_two_clustering_metrics_intersection" / "cluster_a16_b4"
        for suffix in (".bin", ".idx"):
            assert (tmp_path / f"c{suffix}").read_bytes() == pathlib.Path(
                f"{fixture}{suffix}").read_bytes()


class TestDtypes:
    @pytest.mark.parametrize("code, name", sorted(SPEC_CODES.items()))
    def test_codes_are_the_spec_table_and_round_trip(self, code, name, tmp_path):
        assert DTYPE_CODES[code] == np.dtype(name)
        info = np.iinfo(name)
        rows = [[info.min, 0, info.max], [1]]
        write_rows(tmp_path / "x", [np.array(r, name) for r in rows], name)
        assert (tmp_path / "x.idx").read_bytes()[17] == code
        dtype = np.dtype(name).newbyteorder("<")
        assert (tmp_path / "x.bin").read_bytes() == np.array(rows[0] + rows[1], dtype).tobytes()
        ds = MMapIndexedDataset(tmp_path / "x")
        assert ds.dtype == np.dtype(name) and [r.tolist() for r in ds] == rows

    def test_codes_are_read_only(self):
        with pytest.raises(TypeError):
            DTYPE_CODES[9] = np.dtype("float32")

    @pytest.mark.parametrize("low, high, name", [
        (0, 0, "uint8"), (0, 255, "uint8"), (0, 256, "uint16"), (0, 65535, "uint16"),
        (0, 65536, "uint32"), (0, 2**32 - 1, "uint32"), (0, 2**32, "uint64"),
        (0, 2**64 - 1, "uint64"), (-1, 0, "int8"), (-128, 127, "int8"), (-129, 0, "int16"),
        (-1, 128, "int16"), (-32768, 32767, "int16"), (-32769, 0, "int32"),
        (-1, 32768, "int32"), (-(2**31), 2**31 - 1, "int32"), (-(2**31) - 1, 0, "int64"),
        (-1, 2**31, "int64"), (-(2**63), 2**63 - 1, "int64"),
        (np.int64(-5), np.uint8(3), "int8"),
    ])
    def test_find_fit_int_dtype_boundaries(self, low, high, name):
        assert find_fit_int_dtype(low, high) == np.dtype(name)

    def test_find_fit_int_dtype_errors(self):
        with pytest.raises(ValueError, match=r"max_value must be an int >= 3, got 2; the range"):
            find_fit_int_dtype(3, 2)
        with pytest.raises(TypeError, match=r"min_value must be an int, got 0.5 of type float"):
            find_fit_int_dtype(0.5, 2)
        with pytest.raises(ValueError, match=r"\[min_value, max_value\] must be a range that "
                                             r"one 64-bit integer dtype holds"):
            find_fit_int_dtype(0, 2**64)
        with pytest.raises(ValueError, match=r"one 64-bit integer dtype holds, got \[-1, "):
            find_fit_int_dtype(-1, 2**63)


def _pair(tmp_path, rows=([1, 2], [3]), dtype="int16"):
    prefix = str(tmp_path / "x")
    write_rows(prefix, rows, dtype)
    return prefix, pathlib.Path(prefix + ".idx"), pathlib.Path(prefix + ".bin")


class TestHeaderErrors:
    def _corrupt(self, path, offset, data):
        raw = bytearray(path.read_bytes())
        raw[offset: offset + len(data)] = data
        path.write_bytes(bytes(raw))

    def test_wrong_magic(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)
        self._corrupt(idx, 0, b"NOTMAGIC!")
        with pytest.raises(ValueError, match=r"x\.idx is not an MMapIndexedDataset index: it "
                                             r"starts with b'NOTMAGIC!', expected b'MMIDIDX"):
            MMapIndexedDataset(prefix)

    def test_old_indexed_dataset_magic_is_named(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)
        self._corrupt(idx, 0, b"TNTIDX\x00\x00\x00")
        with pytest.raises(ValueError, match=r"a TNTIDX 'lazy'/'cached' IndexedDataset index"):
            MMapIndexedDataset(prefix)

    def test_version(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)
        self._corrupt(idx, 9, struct.pack("<Q", 2))
        with pytest.raises(ValueError, match=r"x\.idx has format version 2; only version 1"):
            MMapIndexedDataset(prefix)

    @pytest.mark.parametrize("code", [0, 9, 255])
    def test_unknown_dtype_code(self, tmp_path, code):
        prefix, idx, _ = _pair(tmp_path)
        self._corrupt(idx, 17, bytes([code]))
        with pytest.raises(ValueError, match=rf"x\.idx has dtype code {code}; the known codes "
                                             r"are 1 \(uint8\), 2 \(int8\), .*8 \(uint64\)"):
            MMapIndexedDataset(prefix)

    def test_truncated_header(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)
        idx.write_bytes(idx.read_bytes()[:20])
        with pytest.raises(ValueError, match=r"x\.idx is truncated: 20 bytes, but the header "
                                             r"alone has 34"):
            MMapIndexedDataset(prefix)

    def test_truncated_index(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)  # 2 rows, 2 doc entries: 34 + 24 + 16 = 74 bytes
        idx.write_bytes(idx.read_bytes()[:60])
        with pytest.raises(ValueError, match=r"x\.idx is truncated: 60 bytes, but 2 rows and 2 "
                                             r"document-index entries need 74"):
            MMapIndexedDataset(prefix)

    def test_trailing_bytes(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path)
        idx.write_bytes(idx.read_bytes() + b"\x00" * 3)
        with pytest.raises(ValueError, match=r"x\.idx has 3 unexpected bytes after its "
                                             r"document index \(2 rows and 2 entries make 74\)"):
            MMapIndexedDataset(prefix)

    def test_truncated_data(self, tmp_path):
        prefix, _, bin_ = _pair(tmp_path)
        bin_.write_bytes(bin_.read_bytes()[:4])
        with pytest.raises(ValueError, match=r"x\.bin is truncated: it has 4 bytes, but its "
                                             r"index .*x\.idx describes 6 \(2 rows of int16\)"):
            MMapIndexedDataset(prefix)

    def test_data_longer_than_the_index(self, tmp_path):
        prefix, _, bin_ = _pair(tmp_path)
        bin_.write_bytes(bin_.read_bytes() + b"\x00\x00")
        with pytest.raises(ValueError, match=r"x\.bin has 8 bytes, but its index"):
            MMapIndexedDataset(prefix)

    def test_megatron_uint16_code_is_rejected_by_size(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path, dtype="uint16")
        self._corrupt(idx, 17, bytes([8]))  # Megatron's uint16 is DeepSpeed's uint64
        with pytest.raises(ValueError, match=r"x\.bin is truncated: it has 6 bytes, .* "
                                             r"describes 12 \(2 rows of uint64\)"):
            MMapIndexedDataset(prefix)

    def test_missing_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"index file .*nothing\.idx does not exist; "
                                                    r"MMapIndexedDataset takes the path without"):
            MMapIndexedDataset(tmp_path / "nothing")
        prefix, _, bin_ = _pair(tmp_path)
        bin_.unlink()
        with pytest.raises(FileNotFoundError, match=r"data file .*x\.bin does not exist \(its "
                                                    r"index .*x\.idx does\)"):
            MMapIndexedDataset(prefix)

    def test_validate_finds_bad_offsets_and_doc_index(self, tmp_path):
        prefix, idx, _ = _pair(tmp_path, rows=([1, 2], [3], [4]))
        self._corrupt(idx, 34 + 4, struct.pack("<i", -1))
        with pytest.raises(ValueError, match=r"x\.idx: row 1 has a negative size"):
            MMapIndexedDataset(prefix).validate()
        prefix, idx, _ = _pair(tmp_path, rows=([1, 2], [3], [4]))
        self._corrupt(idx, 34 + 12 + 8, struct.pack("<q", 2))  # row 1 starts at 2, not 4
        with pytest.raises(ValueError, match=r"x\.idx: row 1 starts at byte 2, but the sizes "
                                             r"before it put it at 4"):
            MMapIndexedDataset(prefix).validate()
        write_rows(prefix, [[1], [2]], "uint8", doc_idx=[0, 2])
        self._corrupt(idx, 34 + 24, struct.pack("<q", 1))
        with pytest.raises(ValueError, match=r"the document index \[1, 2\]\.\.\. must start at "
                                             r"0 and not decrease past 2 rows"):
            MMapIndexedDataset(prefix).validate()


class TestReader:
    def test_rows_are_zero_copy_views(self, tmp_path):
        prefix, _, _ = _pair(tmp_path, rows=([1, 2, 3], [], [4, 5]))
        ds = MMapIndexedDataset(prefix)
        assert isinstance(ds.values, np.memmap)
        assert np.shares_memory(ds[2], ds.values) and np.shares_memory(ds.concatenated(),
                                                                       ds.values)
        assert all(isinstance(a, np.memmap) for a in (ds.sizes, ds.pointers, ds.doc_idx))
        assert not ds[0].flags.writeable
        assert ds.sizes.tolist() == [3, 0, 2] and ds.pointers.tolist() == [0, 6, 6]
        assert [r.tolist() for r in ds[::2]] == [[1, 2, 3], [4, 5]]
        assert ds[-1].tolist() == [4, 5] and ds[1].tolist() == []
        assert ds.concatenated(1).tolist() == [4, 5] and ds.concatenated(2, 1).tolist() == []
        assert ds.path == prefix and repr(ds) == f"MMapIndexedDataset({prefix!r}, rows=3, " \
                                                 "dtype=int16)"

    def test_suffixes_are_accepted(self, tmp_path):
        prefix, _, _ = _pair(tmp_path)
        assert MMapIndexedDataset(prefix + ".bin").path == prefix
        assert len(MMapIndexedDataset(prefix + ".idx")) == 2

    def test_empty_files(self, tmp_path):
        write_rows(tmp_path / "e", [], "uint32")
        ds = MMapIndexedDataset(tmp_path / "e")
        assert len(ds) == 0 and ds.values.shape == (0,) and ds.doc_idx.tolist() == [0, 0]
        assert ds.concatenated().tolist() == [] and list(ds) == []

    def test_index_errors(self, tmp_path):
        ds = MMapIndexedDataset(_pair(tmp_path)[0])
        with pytest.raises(IndexError, match=r"row 2 is out of range for .*x \(2 rows\)"):
            ds[2]
        with pytest.raises(IndexError, match=r"row -3 is out of range"):
            ds[-3]
        with pytest.raises(TypeError, match=r"row index must be an int or a slice, got '0' of "
                                            r"type str"):
            ds["0"]

    def test_rewritten_file_leaves_open_views_valid(self, tmp_path):
        prefix, _, _ = _pair(tmp_path, rows=([7, 8],))
        row = MMapIndexedDataset(prefix)[0]
        write_rows(prefix, [[1, 2, 3]], "int16")  # the sampler rewrites reshuffled clusters
        assert row.tolist() == [7, 8] and MMapIndexedDataset(prefix)[0].tolist() == [1, 2, 3]


class TestWriter:
    def test_values_must_fit_and_be_integers(self, tmp_path):
        with IndexedDatasetWriter(tmp_path / "x", np.uint8) as writer:
            with pytest.raises(ValueError, match=r"values written to .*x must be in \[0, 255\] "
                                                 r"\(uint8\), got \[0, 256\]; choose the dtype "
                                                 r"with find_fit_int_dtype"):
                writer.add_item(np.array([0, 256]))
            with pytest.raises(TypeError, match=r"values written to .*x must be integers, got "
                                                 r"'float64' of type str; the file stores uint8"):
                writer.add_item(np.array([1.0]))
            writer.add_item(np.array([True, False]))
            writer.add_item([])
        assert [r.tolist() for r in MMapIndexedDataset(tmp_path / "x")] == [[1, 0], []]

    @pytest.mark.parametrize("dtype, error, message", [
        ("float32", ValueError, r"dtype must be one of uint8, int8, int16, int32, int64, uint16, "
                                r"uint32, uint64, got 'float32'; the format stores integers"),
        ("nonsense", TypeError, r"dtype must be a NumPy integer dtype, got 'nonsense' of type "
                                r"str"),
    ])
    def test_dtype_errors(self, tmp_path, dtype, error, message):
        with pytest.raises(error, match=message):
            IndexedDatasetWriter(tmp_path / "x", dtype)
        assert list(tmp_path.iterdir()) == []

    def test_size_errors(self, tmp_path):
        with IndexedDatasetWriter(tmp_path / "x", "int32") as writer:
            with pytest.raises(ValueError, match=r"sizes must be in \[0, 2147483647\], got "
                                                 r"\[-1, 2\]; rows are at most int32 elements"):
                writer.add_sizes([2, -1])
            with pytest.raises(TypeError, match=r"sizes must be integers, got 'float64'"):
                writer.add_sizes([1.5])
            with pytest.raises(ValueError, match=r"count must be an int >= 0, got -1"):
                writer.add_equal_sizes(-1)
            with pytest.raises(ValueError, match=r"size must be an int in \[0, 2147483647\], got "
                                                 r"2147483648"):
                writer.add_equal_sizes(1, 2**31)

    def test_sizes_must_account_for_the_values(self, tmp_path):
        writer = IndexedDatasetWriter(tmp_path / "x", "int8")
        writer.write_values([1, 2, 3])
        writer.add_sizes([2])
        with pytest.raises(ValueError, match=r"the rows of .*x hold 2 elements, but 3 values "
                                             r"were written"):
            writer.finalize()
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(RuntimeError, match=r"the writer of .*x is already aborted"):
            writer.add_item([1])

    def test_an_error_leaves_nothing_and_keeps_the_old_files(self, tmp_path):
        prefix, idx, bin_ = _pair(tmp_path, rows=([5],))
        before = (idx.read_bytes(), bin_.read_bytes())
        with pytest.raises(KeyError), IndexedDatasetWriter(prefix, "int16") as writer:
            writer.add_item([1, 2, 3])
            writer.end_document()
            raise KeyError("boom")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin", "x.idx"]
        assert (idx.read_bytes(), bin_.read_bytes()) == before

    def test_no_temporary_files_remain_and_finalize_once(self, tmp_path):
        writer = IndexedDatasetWriter(tmp_path / "x", "uint64")
        writer.add_items([[1], [2, 3]])
        assert writer.rows == 2 and writer.dtype == np.uint64
        assert len(list(tmp_path.iterdir())) == 2  # the temporary .bin and the size spool
        writer.finalize()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin", "x.idx"]
        with pytest.raises(RuntimeError, match=r"already finalized"):
            writer.finalize()

    def test_blocked_index_matches_one_block(self, tmp_path, monkeypatch):
        rows = [np.arange(k) for k in (3, 0, 7, 1, 5, 2, 9)]
        write_rows(tmp_path / "one", rows, "int64", doc_idx=[0, 3, 3, 7])
        monkeypatch.setattr(_index_writer, "_BLOCK", 2)
        with IndexedDatasetWriter(tmp_path / "many", "int64") as writer:
            writer.write_values(np.concatenate(rows))
            writer.add_equal_sizes(0, 4)
            writer.add_sizes([len(r) for r in rows[:3]])
            writer.end_document()
            writer.end_document()
            writer.add_sizes([len(r) for r in rows[3:]])
            writer.end_document()
        for suffix in (".bin", ".idx"):
            assert (tmp_path / f"many{suffix}").read_bytes() == (
                tmp_path / f"one{suffix}").read_bytes()

    def test_write_rows_doc_index_errors(self, tmp_path):
        with pytest.raises(ValueError, match=r"doc_idx must be non-decreasing and starting with "
                                             r"0, got \[1, 2\]; the writer's document index"):
            write_rows(tmp_path / "x", [[1], [2]], "uint8", doc_idx=[1, 2])
        with pytest.raises(ValueError, match=r"doc_idx\[1\] must be an int in \[0, 2\], got 3"):
            write_rows(tmp_path / "x", [[1], [2]], "uint8", doc_idx=[0, 3])
        with pytest.raises(ValueError, match=r"doc_idx must be non-decreasing"):
            write_rows(tmp_path / "x", [[1], [2]], "uint8", doc_idx=[0, 2, 1])
        assert list(tmp_path.iterdir()) == []
        write_rows(tmp_path / "y", [[1], [2]], "uint8", doc_idx=[0, 0, 1])
        assert MMapIndexedDataset(tmp_path / "y").doc_idx.tolist() == [0, 0, 1]
