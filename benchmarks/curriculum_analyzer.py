"""Data analyzer throughput, its memory at 1M versus 10M samples, and the memmap reader.

Three parts, each a Markdown table:

1. **Throughput**: ``DataAnalyzer`` map and reduce over a synthetic in-RAM dataset of
   1M samples of 128 int32 tokens (vocabulary 50k, random lengths, padding id 0) for
   each built-in metric (``seqlen``, ``total_vocab_freq``, ``vocab_rarity``,
   ``seqlen_vocab_rarity``), at ``batch_size`` 1024; plus the same ``seqlen`` analysis
   through an item-by-item dataset (``__getitem__`` + stacking), with
   ``batch_size=1`` (DeepSpeed's default), and with ``num_threads=2``.
2. **Memory**: one subprocess per dataset size (1M and 10M samples) maps and reduces
   ``seqlen`` + ``vocab_rarity`` + ``total_vocab_freq`` over a *generated* dataset
   (rows computed from their index on each slice, so the dataset itself holds no
   memory), and reports the peak of ``tracemalloc`` (Python and NumPy allocations),
   the peak anonymous resident memory (``RssAnon`` sampled every 2 ms) and the peak
   resident set (``VmHWM``, which also counts file pages of the process), with the
   bytes written to disk.
3. **Reader**: ``MMapIndexedDataset`` on the largest run's files: opening, random rows,
   a band of rows as one view, ``validate()``, and a sequential pass over every value.

Usage (from the repository root)::

  PYTHONPATH=. python benchmarks/curriculum_analyzer.py [--quick]

``--quick`` (about 10 s) uses 100k samples for part 1 and 300k versus 1M for part 2
(memory is bounded by the blocks of 256k samples the reduce and the index writer use,
so it stops growing from about 256k samples on).
Timings on a shared machine are as good as its load (printed in the header).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import algoperf_reinit
from algoperf_reinit.data_efficiency import (
    DataAnalyzer,
    MMapIndexedDataset,
    seqlen_metric,
    seqlen_vocab_rarity_metric,
    total_vocab_freq_metric,
    vocab_rarity_metric,
)

SEQ_LEN = 128
VOCAB = 50_000
BATCH = 1024
SINGLE, ACCUMULATE = "single_value_per_sample", "accumulate_value_over_samples"


class Mode(NamedTuple):
    name: str
    throughput_samples: int
    item_samples: int  # item-by-item dataset
    batch1_samples: int  # batch_size=1
    memory_samples: tuple[int, ...]
    reader_rows: int  # random row reads


FULL = Mode("full", 1_000_000, 100_000, 20_000, (1_000_000, 10_000_000), 200_000)
QUICK = Mode("quick", 100_000, 10_000, 2_000, (300_000, 1_000_000), 20_000)


def header(argv: list[str], mode: Mode) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join([
        "$ " + shlex.join([sys.executable, *argv]),
        f"{datetime.datetime.now().isoformat(timespec='seconds')}; {platform.platform()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load}",
        f"python {platform.python_version()}, numpy {np.__version__}, algoperf_reinit "
        f"{algoperf_reinit.__version__}; mode {mode.name}",
    ])


def table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def in_ram_tokens(n: int, seed: int = 0) -> np.ndarray:
    """int32 tokens [n, 128] in [1, VOCAB], padded with 0 after a random length."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB + 1, size=(n, SEQ_LEN), dtype=np.int32)
    lengths = rng.integers(1, SEQ_LEN + 1, size=n)
    tokens[np.arange(SEQ_LEN)[None, :] >= lengths[:, None]] = 0
    return tokens


class GeneratedTokens:
    """A dataset of ``n`` token rows computed from their index on each slice (no storage)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> np.ndarray:
        rows = np.arange(key.start, key.stop, dtype=np.uint64)[:, None]
        cols = np.arange(SEQ_LEN, dtype=np.uint64)[None, :]
        tokens = ((rows * np.uint64(2654435761) + cols * np.uint64(40503)) % np.uint64(VOCAB)
                  + np.uint64(1)).astype(np.int32)
        lengths = (rows * np.uint64(7919)) % np.uint64(SEQ_LEN) + np.uint64(1)
        tokens[cols >= lengths] = 0
        return tokens


class Items:
    """Item-by-item view of an array (``__getitem__`` of one sample)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return self.array.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[i]


def analyze(dataset: Any, save_path: str, metrics: dict[str, tuple[Callable, str]],
            **kwargs: Any) -> tuple[float, float]:
    """Seconds of run_map and run_reduce for the given {name: (function, type)}."""
    analyzer = DataAnalyzer(
        dataset, metric_names=list(metrics), metric_functions=[f for f, _ in metrics.values()],
        metric_types=[t for _, t in metrics.values()], metric_dtypes=[np.int64] * len(metrics),
        save_path=save_path, **{"batch_size": BATCH, **kwargs})
    began = time.perf_counter()
    analyzer.run_map()
    mapped = time.perf_counter()
    analyzer.run_reduce()
    return mapped - began, time.perf_counter() - mapped


def distinct(save_path: str, name: str) -> int:
    return len(MMapIndexedDataset(DataAnalyzer.output_prefix(save_path, name, "index_to_metric")))


def part_throughput(mode: Mode, work: str) -> str:
    n = mode.throughput_samples
    tokens = in_ram_tokens(n)
    rows = []

    def run(label: str, dataset: Any, count: int, name: str, function: Callable, kind: str,
            **kwargs: Any) -> str:
        path = os.path.join(work, label.replace(" ", "_").replace(",", "").replace("=", ""))
        map_s, reduce_s = analyze(dataset, path, {name: (function, kind)}, **kwargs)
        values = distinct(path, name) if kind == SINGLE else "—"
        rows.append([label, f"{count:,}", kwargs.get("batch_size", BATCH), f"{map_s:.2f}",
                     f"{reduce_s:.2f}", f"{count / map_s:,.0f}",
                     f"{count / (map_s + reduce_s):,.0f}", values])
        return path

    run("seqlen", tokens, n, "seqlen", seqlen_metric(), SINGLE)
    hist = run("total_vocab_freq", tokens, n, "hist", total_vocab_freq_metric(VOCAB), ACCUMULATE)
    counts = MMapIndexedDataset(DataAnalyzer.output_prefix(hist, "hist", "metric_value"))[0]
    run("vocab_rarity", tokens, n, "rarity", vocab_rarity_metric(counts), SINGLE)
    run("seqlen_vocab_rarity", tokens, n, "svr",
        seqlen_vocab_rarity_metric(counts, seq_len=SEQ_LEN), SINGLE)
    run("vocab_rarity, num_threads=2", tokens, n, "rarity", vocab_rarity_metric(counts), SINGLE,
        num_threads=2)
    m = mode.item_samples
    run("seqlen, item-by-item dataset", Items(tokens[:m]), m, "seqlen", seqlen_metric(), SINGLE)
    k = mode.batch1_samples
    run("seqlen, batch_size=1", tokens[:k], k, "seqlen", seqlen_metric(), SINGLE, batch_size=1)
    return table(["metric / dataset", "samples", "batch", "map [s]", "reduce [s]",
                  "map samples/s", "map+reduce samples/s", "distinct values"], rows)


def _peak_anonymous_rss(stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        stop.wait(0.002)


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _disk(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files)


def memory_child(n: int, save_path: str) -> None:
    """Runs in a subprocess: analyze ``n`` generated samples; print measurements as JSON."""
    counts = np.arange(VOCAB + 1, 0, -1, dtype=np.int64)  # a fixed, Zipf-like histogram
    metrics = {"seqlen": (seqlen_metric(), SINGLE),
               "rarity": (vocab_rarity_metric(counts), SINGLE),
               "hist": (total_vocab_freq_metric(VOCAB), ACCUMULATE)}
    dataset = GeneratedTokens(n)
    before = _status("RssAnon") or 0
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_peak_anonymous_rss, args=(stop, peak), daemon=True)
    sampler.start()
    tracemalloc.start()
    map_s, reduce_s = analyze(dataset, save_path, metrics, batch_by_slice=True)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stop.set()
    sampler.join()
    outputs = sum(os.path.getsize(os.path.join(save_path, m, f)) for m in metrics
                  for f in os.listdir(os.path.join(save_path, m)) if f.endswith((".bin", ".idx")))
    print(json.dumps({"n": n, "map_s": map_s, "reduce_s": reduce_s, "traced": traced,
                      "rss_anon_peak": peak[0], "rss_anon_before": before,
                      "vm_hwm": _status("VmHWM"), "disk": _disk(save_path),
                      "outputs": outputs, "distinct": distinct(save_path, "rarity")}))


def part_memory(mode: Mode, work: str) -> tuple[str, str]:
    rows, last = [], ""
    mib = 1 << 20
    for n in mode.memory_samples:
        last = os.path.join(work, f"memory_{n}")
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", str(n), last],
            capture_output=True, text=True, check=True, env=dict(os.environ))
        r = json.loads(done.stdout.strip().splitlines()[-1])
        total = r["map_s"] + r["reduce_s"]
        rows.append([f"{n:,}", f"{r['map_s']:.1f}", f"{r['reduce_s']:.1f}",
                     f"{n / total:,.0f}", r["distinct"], f"{r['traced'] / mib:.1f}",
                     f"{(r['rss_anon_peak'] - r['rss_anon_before']) / mib:.1f}",
                     f"{r['vm_hwm'] / mib:.1f}" if r["vm_hwm"] else "—",
                     f"{r['disk'] / mib:.0f}", f"{r['outputs'] / mib:.0f}"])
    return table(["samples", "map [s]", "reduce [s]", "samples/s", "rarity values",
                  "tracemalloc peak [MiB]", "RssAnon peak growth [MiB]", "VmHWM [MiB]",
                  "disk written [MiB]", "of which outputs [MiB]"], rows), last


def part_reader(save_path: str, rows_to_read: int) -> str:
    out = []

    def timed(label: str, function: Callable[[], Any], count: int | None = None) -> Any:
        began = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - began
        rate = f"{count / seconds:,.0f} /s" if count else "—"
        out.append([label, f"{seconds * 1e3:.2f}", rate])
        return result

    for kind in ("sample_to_metric", "index_to_sample"):
        prefix = DataAnalyzer.output_prefix(save_path, "rarity", kind)
        ds = timed(f"{kind}: open ({os.path.getsize(prefix + '.bin') >> 20} MiB .bin)",
                   lambda p=prefix: MMapIndexedDataset(p))
        picks = np.random.default_rng(0).integers(0, len(ds), size=rows_to_read)
        timed(f"{kind}: {rows_to_read:,} random rows ds[i] (of {len(ds):,})",
              lambda d=ds, p=picks: [d[int(i)] for i in p], rows_to_read)
        timed(f"{kind}: validate()", ds.validate)
        timed(f"{kind}: sum of all {ds.values.shape[0]:,} values",
              lambda d=ds: int(d.values.sum(dtype=np.int64)), ds.values.shape[0])
        if kind == "index_to_sample":
            band = timed(f"{kind}: concatenated() of the first half of the rows",
                         lambda d=ds: d.concatenated(0, len(d) // 2))
            out[-1][2] = f"{band.shape[0]:,} ids, one view"
    return table(["operation", "time [ms]", "rate"], out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 10 s")
    parser.add_argument("--memory-child", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv[1:])
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1])
        return 0
    mode = QUICK if args.quick else FULL
    print(header(argv, mode))
    with tempfile.TemporaryDirectory(prefix="curriculum_analyzer_") as work:
        print(f"\n## 1. Analyzer throughput ({mode.throughput_samples:,} samples of "
              f"{SEQ_LEN} int32 tokens in RAM)\n")
        print(part_throughput(mode, work), flush=True)
        sizes = " vs ".join(f"{n:,}" for n in mode.memory_samples)
        print(f"\n## 2. Peak memory at {sizes} generated samples (seqlen + vocab_rarity + "
              "total_vocab_freq, one subprocess each)\n")
        text, last = part_memory(mode, work)
        print(text, flush=True)
        print(f"\n## 3. MMapIndexedDataset on the {mode.memory_samples[-1]:,}-sample "
              "vocab_rarity files\n")
        print(part_reader(last, mode.reader_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
