"""The curriculum's device side: the device gather versus a plain take, the seqlen op's cost.

Side by side in one process, on a synthetic token dataset (int32 ``inputs`` and
float32 ``weights``, ``[N, 128]``):

1. **Device gather** at global batch 256 and 4096: ``DeviceDataset(ids)`` (the host
   checks the ids' min and max, sends them as int32, one jitted gather, output sharded
   ``P('batch')``), replicated and batch-sharded placements, against a plain jitted
   ``jnp.take`` of the same arrays and ids (ids sent from the host too, no checks).
   Each call is timed to ``block_until_ready``; ours and the plain take alternate
   within each repeat; medians. Samples/s and the ratio ours/plain.
2. **Sequence-length op** per batch (``[B, S]`` int32 inputs and targets, float32
   weights, already on the device): ``SeqlenCurriculum(batch, step)`` at a fixed length
   (truncate to ``S/2``, re-pack to ``S/4``), its host part alone (batch detection,
   scheduler, bucket, plan), and a plain jitted slice ``x[:, :L]`` of the same arrays.
3. **Host side** (:func:`host_side`): ``DeepSpeedDataSampler``'s sample ids/s at global
   batch 256 and 4096 over a 10M-sample synthetic index (during a curriculum, for the
   writing rank and a memory-only rank, and after it; target >= 1M ids/s after it), and
   the analyzer's throughput on 1M samples (``curriculum_analyzer.part_throughput``).

Usage (from the repository root)::

  PYTHONPATH=. python benchmarks/curriculum_sampler.py [--quick]

``--quick`` (about 10 s) uses a 20k-sample dataset, fewer repeats, a smaller
sequence batch, a 1M-sample sampler index and a 100k-sample analyzer run; it only
reports. Full mode checks one target (the device gather
within 2x of the plain take at batch 4096, where the fixed cost of the host checks is
amortised) and exits 1 if it misses.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import _report
import curriculum_analyzer
import jax
import jax.numpy as jnp
import numpy as np

from algoperf_reinit.data_efficiency import (
    DeepSpeedDataSampler,
    DeviceDataset,
    SeqlenCurriculum,
    sequence_batch,
)
from algoperf_reinit.data_efficiency._sampler_throughput import (
    measure_sampler_throughput,
    synthetic_curriculum_config,
)

SEQ = 128
BATCHES = (256, 4096)
GATHER_TARGET = 2.0  # ours / plain time at the largest batch, full mode


class Mode(NamedTuple):
    """Benchmark sizes."""

    name: str
    samples: int  # dataset rows
    repeats: int  # timed calls per measurement (median)
    seqlen_batch: tuple[int, int]  # (B, S) of the sequence-length op
    seqlen_repeats: int


FULL = Mode("full", samples=200_000, repeats=50, seqlen_batch=(256, 1024), seqlen_repeats=50)
QUICK = Mode("quick", samples=20_000, repeats=7, seqlen_batch=(64, 512), seqlen_repeats=7)


def token_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"inputs": rng.integers(0, 50_000, size=(n, SEQ), dtype=np.int32),
            "weights": (rng.random((n, SEQ)) > 0.1).astype(np.float32)}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def side_by_side(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, interleaved, after one warm-up call each."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


@jax.jit
def _plain_take(data: dict[str, jax.Array], ids: jax.Array) -> dict[str, jax.Array]:
    return {k: jnp.take(x, ids, axis=0) for k, x in data.items()}


def part_gather(mode: Mode) -> tuple[list[str], float]:
    """Table of section 1 and ours/plain at the largest batch (replicated placement)."""
    host = token_data(mode.samples)
    ours = {p: DeviceDataset(host, placement=p) for p in ("replicated", "sharded")}
    on_device = jax.device_put(host)
    rng = np.random.default_rng(1)
    rows, ratio = [], 0.0
    for batch in BATCHES:
        ids = rng.integers(0, mode.samples, size=batch)
        seconds = side_by_side({
            "ours, replicated": lambda ids=ids: ours["replicated"](ids),
            "ours, sharded": lambda ids=ids: ours["sharded"](ids),
            "plain jnp.take": lambda ids=ids: _plain_take(on_device, jnp.asarray(ids)),
            "host check only": lambda ids=ids: ours["replicated"].check_ids(ids),
        }, mode.repeats)
        plain = seconds["plain jnp.take"]
        for name, s in seconds.items():
            rel = f"{s / plain:.2f}x" if name != "host check only" else "—"
            rows.append([batch, name, f"{s * 1e3:.3f}", f"{batch / s:,.0f}", rel])
        ratio = seconds["ours, replicated"] / plain
    bytes_per_sample = sum(v[0].nbytes for v in host.values())
    lines = [f"Dataset {mode.samples:,} samples x {bytes_per_sample} bytes "
             f"({sum(v.nbytes for v in host.values()) / 2**20:.0f} MiB), "
             f"{jax.device_count()} device(s); median of {mode.repeats} calls each.", ""]
    lines += _report.table(["batch", "gather", "ms / call", "samples/s", "time / plain"],
                           rows, "rlrrr")
    return lines, ratio


def _fixed(length: int) -> dict[str, Any]:
    """A schedule that stays at ``length`` (min = max: never updated)."""
    return {"min_difficulty": length, "max_difficulty": length, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": 1, "difficulty_step": 8}}


def part_seqlen(mode: Mode) -> list[str]:
    """Table of section 2."""
    b, s = mode.seqlen_batch
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 256, size=(b, s + 1), dtype=np.int32)
    batch = jax.device_put({"inputs": tokens[:, :-1], "targets": tokens[:, 1:],
                            "weights": np.ones((b, s), np.float32)})
    rows = []
    for kind, length in (("seqlen_truncate", s // 2), ("seqlen_reshape", s // 4)):
        curriculum = SeqlenCurriculum(_fixed(length), mode=kind)
        planner = SeqlenCurriculum(_fixed(length), mode=kind)
        slice_fn = jax.jit(lambda x, n=length: {k: v[:, :n] for k, v in x.items()})
        steps = iter(range(10**9))
        seconds = side_by_side({
            "curriculum(batch, step)": lambda c=curriculum, k=steps: c(batch, next(k)),
            "host part: detect + plan": lambda p=planner, k=steps: (sequence_batch(batch),
                                                                    p.plan(next(k), b, s)),
            "plain jitted x[:, :L]": lambda f=slice_fn: f(batch),
        }, mode.seqlen_repeats)
        rows_out = curriculum.last_plan.rows
        for name, sec in seconds.items():
            rows.append([kind, f"{b}x{s} -> {rows_out}x{length}", name, f"{sec * 1e3:.3f}"])
    lines = [f"Batch {b} x {s} on the device; median of {mode.seqlen_repeats} calls.", ""]
    return lines + _report.table(["mode", "shape", "call", "ms / batch"], rows, "llrr")


class HostMode(NamedTuple):
    """Sizes of the host section."""

    index_samples: int  # N of the synthetic curriculum index
    curriculum_steps: tuple[int, ...]  # total_curriculum_step of the "during" rows
    during_steps: int  # global batches measured from step 1 ("during" rows)
    after_ids: int  # ids measured once the schedule reached its maximum


HOST_FULL = HostMode(10_000_000, (2_000, 20_000), 2_000, 4_000_000)
HOST_QUICK = HostMode(1_000_000, (2_000,), 200, 200_000)
SAMPLER_TARGET = 1_000_000  # sample ids/s


def _sampler_row(cfg: dict[str, Any], host: HostMode, batch: int, phase: str,
                 writer: bool) -> tuple[list[Any], float]:
    """One measured row: ``phase`` is ``"during"`` (from step 1) or ``"after"``."""
    sampler = DeepSpeedDataSampler(cfg, host.index_samples, batch, 0, 1, 1,
                                   write_clusters=writer)
    metric = cfg["data_sampling"]["curriculum_learning"]["curriculum_metrics"]["seqlen"]
    total = metric["schedule_config"]["total_curriculum_step"]
    if phase == "after":
        for _ in range(total + 1):
            sampler.get_next_global_batch()
        result = measure_sampler_throughput(sampler, min_ids=host.after_ids, min_seconds=0.5)
        label = f"after (step > {total:,})"
    else:
        result = measure_sampler_throughput(sampler, min_ids=batch * host.during_steps,
                                            min_seconds=0.0)
        label = f"steps 1-{result.global_batches:,} of T={total:,}"
    row = [label, batch, "rank 0 (writes)" if writer else "rank > 0 (memory)",
           result.global_batches, result.clusters, f"{result.seconds:.2f}",
           f"{result.ids_per_second:,.0f}"]
    return row, result.ids_per_second


def part_sampler(host: HostMode, work: str) -> list[str]:
    """Host sampler throughput table, with the target verdict after the curriculum."""
    configs = {t: synthetic_curriculum_config(os.path.join(work, f"T{t}"), host.index_samples,
                                              metrics=("seqlen",), total_curriculum_step=t)
               for t in (*host.curriculum_steps, 100)}
    rows, after = [], {}
    for batch in BATCHES:
        for t in host.curriculum_steps:
            for writer in (True, False):
                rows.append(_sampler_row(configs[t], host, batch, "during", writer)[0])
        row, rate = _sampler_row(configs[100], host, batch, "after", True)
        rows.append(row)
        after[batch] = rate
    met = [f"G={b}: {r / 1e6:.2f}M ({'met' if r >= SAMPLER_TARGET else 'missed'})"
           for b, r in after.items()]
    lines = [f"`DeepSpeedDataSampler` over a {host.index_samples:,}-sample `seqlen` index "
             "(value metric, 64 -> 2048 tokens by 8, `fixed_linear` over T steps; the "
             "\"after\" rows use T=100), one rank, micro-batch = global batch G; ids/s "
             "over iterating its micro-batches; clusters at the end.", ""]
    lines += _report.table(["phase", "G", "process", "global batches", "clusters", "s",
                            "ids/s"], rows, "lrlrrrr")
    verdict = (f"Sampler target >= {SAMPLER_TARGET / 1e6:g}M ids/s after the curriculum: "
               f"{'; '.join(met)}")
    return [*lines, "", verdict]


def host_side(mode: Mode) -> list[str]:
    """Section 3: the curriculum sampler's and the analyzer's throughput on the host.

    * Sampler: ids/s at global batch 256 and 4096 over a synthetic 10M-sample index
      (1M in quick mode) during a curriculum (from step 1, clusters being created and
      shuffled: DeepSpeed shuffles each new cluster whole, so this phase costs
      ``O(G + N / T)`` per step) and after it, for the writing rank and a rank that
      holds the clusters in memory only.
    * Analyzer: ``curriculum_analyzer.part_throughput`` (1M samples; 100k quick).
    """
    host, analyzer_mode = ((HOST_QUICK, curriculum_analyzer.QUICK) if mode.name == "quick"
                           else (HOST_FULL, curriculum_analyzer.FULL))
    with tempfile.TemporaryDirectory(prefix="curriculum_sampler_") as work:
        lines = ["### Sampler", "", *part_sampler(host, os.path.join(work, "sampler"))]
        lines += ["", f"### Analyzer ({analyzer_mode.throughput_samples:,} samples of "
                      f"{curriculum_analyzer.SEQ_LEN} tokens)", "",
                  curriculum_analyzer.part_throughput(analyzer_mode,
                                                      os.path.join(work, "analyzer"))]
    return lines


def run(mode: Mode) -> tuple[list[str], bool]:
    """Runs every part; returns the report lines and whether the full-mode target was met."""
    lines = ["## 1. Device gather versus a plain jnp.take", ""]
    gather, ratio = part_gather(mode)
    lines += gather
    ok = ratio <= GATHER_TARGET
    verdict = "PASS" if ok else "FAIL"
    lines += ["", f"{verdict}: device gather (replicated) at batch {BATCHES[-1]} takes "
                  f"{ratio:.2f}x the plain take's time (target <= {GATHER_TARGET:g}x)"]
    lines += ["", "## 2. Sequence-length op per batch", "", *part_seqlen(mode)]
    lines += ["", "## 3. Host side: sampler and analyzer throughput", "", *host_side(mode)]
    return lines, ok


def describe(mode: Mode) -> str:
    """The ``# mode ...`` line."""
    b, s = mode.seqlen_batch
    return (f"# mode {mode.name}: dataset {mode.samples:,} x {SEQ} tokens, batches "
            f"{', '.join(map(str, BATCHES))}, {mode.repeats} repeats; seqlen batch {b}x{s}, "
            f"{mode.seqlen_repeats} repeats")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 1 in full mode when the gather target is missed, else 0."""
    return _report.quick_or_full(
        argv, script="curriculum_sampler.py", description=__doc__.splitlines()[0],
        quick_help="smoke-test sizes (~10 s); only reports the target",
        full=FULL, quick=QUICK, describe=describe, run=run)


if __name__ == "__main__":
    sys.exit(main())
