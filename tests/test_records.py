"""Run records: JSON-safe values and CSV files read and truncated."""

import json
import math

import numpy as np
import pytest

from algoperf_reinit import _records


def test_jsonable_converts_containers_keys_and_scalars():
    value = {"a": (np.float32(1.5), np.int64(2)), 3: [np.asarray([4.0])], "n": math.nan}
    assert _records.jsonable(value) == {"a": [1.5, 2], "3": [4.0], "n": None}
    kept = _records.jsonable(value, nonfinite="keep")
    assert math.isnan(kept["n"])
    assert type(_records.jsonable(np.float64(0.25))) is float


def test_jsonable_rejects_unknown_modes():
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        _records.jsonable(1.0, nonfinite="drop")


def test_dumps_strict_writes_null_for_non_finite_numbers():
    text = _records.dumps_strict({"b": math.inf, "a": [np.float64(-math.inf), 1]},
                                 sort_keys=True)
    assert text == '{"a": [null, 1], "b": null}'
    assert json.loads(text)["b"] is None


def test_read_csv_of_a_missing_file_is_empty(tmp_path):
    assert _records.read_csv(tmp_path / "nope.csv") == []


def test_truncate_csv_keeps_the_header_and_the_chosen_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("global_step,x\n1,a\n2,b\n3,c\n")
    removed = _records.truncate_csv(path, lambda row: int(row["global_step"]) < 3)
    assert removed == 1
    assert path.read_text() == "global_step,x\n1,a\n2,b\n"
    assert _records.read_csv(path) == [{"global_step": "1", "x": "a"},
                                       {"global_step": "2", "x": "b"}]
    assert _records.truncate_csv(path, lambda row: True) == 0
    assert _records.truncate_csv(tmp_path / "missing.csv", lambda row: False) == 0
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
