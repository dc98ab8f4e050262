"""The curriculum sampler's test oracle: spec §3.3-3.6 as plain Python loops.

:class:`ReferenceSampler` restates DeepSpeed's sampler from the spec, one id and one
row at a time (lists, no vectorisation, no files), with the difficulties from the
spec's formulas (``spec_fixed_root``); index rows come from a metric array the way
the analyzer writes them. It is checked here against DeepSpeed's two recorded streams,
then the other test modules compare :class:`DeepSpeedDataSampler` with it on
configurations DeepSpeed did not record. Also: helpers that write index files and
build configurations.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import find_fit_int_dtype, write_rows
from tests.data_efficiency.test_difficulty import spec_fixed_discrete, spec_fixed_root

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
STREAMS = json.loads((FIXTURES / "deepspeed_sampler_streams.json").read_text())
CASES = {case["name"]: case for case in STREAMS["cases"]}
N = 64
IDS = np.arange(N)
FIXTURE_VALUES = {"a": 8 + (37 * IDS) % 57, "b": (13 * IDS) % 17}  # the fixtures' dataset


def copy_analysis(tmp_path: pathlib.Path) -> pathlib.Path:
    """The fixtures' analyzer files copied under ``tmp_path`` (``analysis/a``, ``b``)."""
    shutil.copytree(FIXTURES / "deepspeed_index_files" / "analysis", tmp_path / "analysis")
    return tmp_path


def write_index(root: pathlib.Path, name: str, values: np.ndarray) -> dict[str, str]:
    """Analyzer-style index files of one metric under ``root/name``; returns the paths.

    Rows of ``index_to_sample``: the ids of each distinct value, ascending (one thread).
    """
    values = np.asarray(values)
    (root / name).mkdir(parents=True, exist_ok=True)
    distinct = sorted(set(values.tolist()))
    prefix = f"{name}/{name}"
    write_rows(root / f"{prefix}_index_to_sample",
               [np.flatnonzero(values == v) for v in distinct],
               find_fit_int_dtype(0, len(values) - 1))
    write_rows(root / f"{prefix}_index_to_metric", [[v] for v in distinct],
               find_fit_int_dtype(min(distinct), max(distinct)))
    return {"index_to_sample_path": f"{prefix}_index_to_sample",
            "index_to_metric_path": f"{prefix}_index_to_metric"}


def metric(kind="value", clustering="schedule_based", lo=16, hi=64, total=10, step=8,
           paths=None, **extra):
    """A ``curriculum_metrics`` entry (fixed_linear unless ``extra`` says otherwise)."""
    out = {"difficulty_type": kind, "clustering_type": clustering, "min_difficulty": lo,
           "max_difficulty": hi, "schedule_type": "fixed_linear",
           "schedule_config": {"total_curriculum_step": total, "difficulty_step": step}}
    out.update(paths or {})
    out.update(extra)
    return out


def config(metrics, seed=1234, cluster_path="clusters", num_epochs=None):
    """A ``data_efficiency`` dict with the curriculum enabled."""
    sampling = {"curriculum_learning": {"enabled": True, "curriculum_metrics": metrics}}
    if cluster_path is not None:
        sampling["curriculum_learning"]["data_cluster_path"] = cluster_path
    if num_epochs is not None:
        sampling["num_epochs"] = num_epochs
    return {"seed": seed, "data_sampling": sampling}


def spec_difficulty(cfg, step, custom=None):
    """Spec §2.1 difficulty of one metric dict at ``step`` (0.19.8 rounding)."""
    sched = cfg.get("schedule_config", {})
    kind = cfg["schedule_type"]
    if kind == "custom":
        return custom(step)
    if kind == "fixed_discrete":
        return spec_fixed_discrete(step, sched["difficulty"], sched["max_step"])
    degree = sched.get("root_degree", 1) if kind == "fixed_root" else 1
    return spec_fixed_root(step, cfg["min_difficulty"], cfg["max_difficulty"],
                           sched["total_curriculum_step"], sched["difficulty_step"], degree)


class ReferenceSampler:
    """DeepSpeed's sampler from the spec, with lists and loops (§3.3-3.6)."""

    def __init__(self, metrics, values, n, micro, dp, gas, seed=1234, num_epochs=1000,
                 rank=0, drop_last=True, wrap_all=False, empty_is_empty=False, custom=None):
        self.metrics, self.n, self.micro, self.dp, self.rank = metrics, n, micro, dp, rank
        self.global_batch, self.total = micro * dp * gas, n * num_epochs
        self.rng = np.random.default_rng(seed)
        self.drop_last, self.wrap_all, self.empty_is_empty = drop_last, wrap_all, empty_is_empty
        self.custom = custom or {}
        self.rows = {}  # metric -> [(value, [ids])], values ascending (the analyzer's rows)
        for name, v in values.items():
            self.rows[name] = [(x, [i for i in range(n) if v[i] == x])
                               for x in sorted(set(v.tolist()))]
        self.n1 = next((sum(len(r) for _, r in self.rows[m]) for m, c in metrics.items()
                        if c["difficulty_type"] == "percentile"
                        and c["clustering_type"] != "single_cluster"), None)
        self.sched = {m: c["min_difficulty"] for m, c in metrics.items()}
        self.step, self.current, self.clusters, self.positions = 0, {}, [], []
        self.names, self.batch, self.consumed = [], [], 0

    def value_band(self, name, a, b):
        out = None
        for value, ids in self.rows[name]:
            if a < value <= b:
                out = list(ids) if out is None else out + list(ids)
        return out

    def percentile_band(self, name, a, b):
        out, per = None, self.n1 // self.metrics[name]["max_difficulty"]
        start, end = per * a, per * b
        if b == self.metrics[name]["max_difficulty"]:
            end = self.n1
        count = 0
        for _, ids in self.rows[name]:
            if count + len(ids) > start:
                first = max(0, start - count)
                last = len(ids) if count + len(ids) <= end else end - count
                out = ids[first:last] if out is None else out + ids[first:last]
            count += len(ids)
            if count >= end:
                break
        return out

    def band(self, name, a, b):
        if self.metrics[name]["difficulty_type"] == "value":
            return self.value_band(name, a, b)
        return self.percentile_band(name, a, b)

    def new_cluster(self, previous):
        clustering = [m for m, c in self.metrics.items() if c["clustering_type"] != "single_cluster"]
        if len(clustering) <= 1:
            new = None if self.clusters else list(range(self.n))
            for m in clustering:
                new = self.band(m, previous[m], self.current[m])
        else:
            new = None
            for m, c in self.metrics.items():
                if c["clustering_type"] == "single_cluster":
                    sel = list(range(self.n))
                else:
                    first = float("-inf") if c["difficulty_type"] == "value" else 0
                    sel = self.band(m, first, self.current[m])
                if sel is None:
                    if not self.empty_is_empty:
                        continue  # "no constraint"
                    sel = []
                new = sel if new is None else np.intersect1d(new, sel, assume_unique=True)
            if new is not None:
                for cluster in self.clusters:
                    new = np.setdiff1d(new, cluster, assume_unique=True)
        if new is not None and len(new) > 0:
            new = np.array(new, np.int64)
            self.rng.shuffle(new)
            self.clusters.append(new.tolist())
            self.positions.append(0)
            self.names.append("cluster" + "".join(f"_{m}{d}" for m, d in self.current.items()))

    def take(self, c, count):
        cluster, pos = self.clusters[c], self.positions[c]
        out = cluster[pos:pos + count]
        self.positions[c] = pos + count
        while len(out) < count:
            remaining = count - len(out)
            cluster = self.clusters[c] = self.shuffled(cluster)
            out = out + cluster[:remaining]
            self.positions[c] = remaining
            if not self.wrap_all:
                break
        return out

    def shuffled(self, ids):
        copy = np.array(ids, np.int64)
        self.rng.shuffle(copy)
        return copy.tolist()

    def next_global_batch(self):
        self.step += 1
        changed, previous = False, {}
        for m, c in self.metrics.items():
            if self.sched[m] < c["max_difficulty"]:
                self.sched[m] = spec_difficulty(c, self.step, self.custom.get(m))
            if m not in self.current or self.sched[m] != self.current[m]:
                changed = True
            first = float("-inf") if c["difficulty_type"] == "value" else 0
            previous[m] = self.current.get(m, first)
            self.current[m] = self.sched[m]
        if changed:
            self.new_cluster(previous)
        sizes = [len(c) for c in self.clusters]
        picks = self.rng.choice(len(sizes), self.global_batch, replace=True,
                                p=[s / sum(sizes) for s in sizes])
        counts = np.bincount(picks, minlength=len(sizes))
        batch = []
        for c in range(len(sizes)):
            batch += self.take(c, int(counts[c]))
        self.rng.shuffle(batch)
        self.batch = batch
        return list(batch)

    def __iter__(self):
        width = self.micro * self.dp
        while self.consumed <= self.total:
            if not self.batch:
                self.next_global_batch()
            chunk, self.batch = self.batch[:width], self.batch[width:]
            if len(chunk) == width or (chunk and not self.drop_last):
                lo = round(self.rank * len(chunk) / self.dp)
                hi = round((self.rank + 1) * len(chunk) / self.dp)
                yield chunk[lo:hi]
                self.consumed += len(chunk)


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_reproduces_deepspeeds_recorded_streams(name):
    case = CASES[name]
    ref = ReferenceSampler(case["metrics"], FIXTURE_VALUES, N, case["micro_batch_size"],
                           case["dp_size"], case["gradient_accumulation_steps"], case["seed"])
    stream = iter(ref)
    for record in case["micro_batches"]:
        assert next(stream) == record["micro_batch"]
        assert ref.step == record["curriculum_step"]
        assert ref.current == record["current_difficulties"]
        assert [len(c) for c in ref.clusters] == record["cluster_sizes"]
        assert ref.positions == record["cluster_positions"]
    assert sorted(f"{n}{ext}" for n in ref.names for ext in (".bin", ".idx")) == \
        case["cluster_files"]


def test_write_index_matches_the_analyzers_files(tmp_path):
    # The helper writes the rows DeepSpeed's analyzer wrote for the fixtures' metric a
    # (the .bin files; the analyzer's .idx document indexes come from its merge).
    write_index(tmp_path, "a", FIXTURE_VALUES["a"])
    ref = FIXTURES / "deepspeed_index_files" / "analysis" / "a"
    for kind in ("index_to_sample", "index_to_metric"):
        ours = tmp_path / "a" / f"a_{kind}.bin"
        assert ours.read_bytes() == (ref / f"a_{kind}.bin").read_bytes()
