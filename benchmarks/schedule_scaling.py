"""How schedule cost scales with the number of cycles: CycleTable vs optax.sgdr_schedule.

For 1, 16, 64, 256 and 1024 equal warmup + cosine cycles over one budget this
prints, side by side and in one process:

* graph size of the jitted *scalar* schedule evaluation (what an optimizer update
  calls): jaxpr equations (counted into nested jaxprs) and instructions of the
  optimised HLO module;
* compile time: ``jax.jit(f).lower(*args).compile()`` with a fresh function object
  per measurement (so no cache hides the work), timed after warm-up compiles of
  other functions (so backend start-up is not counted); best of a few for ours,
  one compile for optax (about 10 s at 1024 cycles);
* evaluation time for every step of the budget at once (100k steps; vectorised,
  ``block_until_ready``, median of repeats after a warm-up call);
* the largest difference between the two schedules on those steps (a sanity check
  that both sides compute the same schedule).

Ours passes the table as an argument; optax's schedule closes over its constants.
Then it checks ours against the targets: constant graph size, compile <= 0.2 s,
1024-cycle evaluation within 10x of 1-cycle. Full mode exits 1 if a target fails;
``--quick`` (about 10 s) only reports: optax stops at 64 cycles, and it uses fewer
steps and repeats.

Usage (from the repository root)::

  PYTHONPATH=. python benchmarks/schedule_scaling.py [--quick]
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import _report
import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf_reinit.schedules import CycleTable, ScheduleConfig, build_cycle_table

CYCLE_COUNTS = (1, 16, 64, 256, 1024)
PEAK = 1e-3
WARMUP_FRACTION = 0.1
COMPILE_TARGET_S = 0.2
EVAL_GROWTH_TARGET = 10.0


class Mode(NamedTuple):
    """Benchmark sizes."""

    name: str
    steps: int  # budget and number of evaluated steps
    eval_repeats: int
    compile_repeats: int  # ours; optax is compiled once per cycle count
    optax_max_cycles: int


FULL = Mode("full", steps=100_000, eval_repeats=11, compile_repeats=3, optax_max_cycles=1024)
QUICK = Mode("quick", steps=20_000, eval_repeats=3, compile_repeats=1, optax_max_cycles=64)


class Measurement(NamedTuple):
    """One implementation at one cycle count."""

    eqns: int
    hlo_ops: int
    compile_s: float
    eval_s: float
    values: np.ndarray


def _sub_jaxprs(value: Any):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _sub_jaxprs(item)


def count_eqns(jaxpr: Any) -> int:
    """Equations of a jaxpr, counting those of nested jaxprs (jit, cond, loops)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for param in eqn.params.values():
            total += sum(count_eqns(sub) for sub in _sub_jaxprs(param))
    return total


_HLO_INSTRUCTION = re.compile(r"^\s+(ROOT\s+)?%?[\w.\-]+\s+=\s")


def count_hlo_ops(hlo_text: str) -> int:
    """Instructions in an HLO module's text (all computations)."""
    return sum(1 for line in hlo_text.splitlines() if _HLO_INSTRUCTION.match(line))


def _compile_seconds(make_fn: Callable[[], Callable], args: Sequence[Any]) -> tuple[float, Any]:
    fn = make_fn()  # a fresh function object: no tracing or compilation cache hit
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - start, compiled


def _eval_seconds(fn: Callable, args: Sequence[Any], repeats: int) -> tuple[float, np.ndarray]:
    values = jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), np.asarray(values)


def _table(cycles: int, steps: int) -> CycleTable:
    return build_cycle_table(ScheduleConfig(num_cycles=cycles), steps, PEAK, WARMUP_FRACTION)


def _optax_schedule(table: CycleTable) -> optax.Schedule:
    n = table.num_cycles
    lengths = np.asarray(table.length)[:n].astype(int)
    warmups = np.asarray(table.warmup)[:n].astype(int)
    peaks = np.asarray(table.peak)[:n]
    return optax.sgdr_schedule([
        dict(init_value=0.0, peak_value=float(p), warmup_steps=int(w), decay_steps=int(n_),
             end_value=0.0)
        for p, w, n_ in zip(peaks, warmups, lengths, strict=True)
    ])


def measure_ours(table: CycleTable, steps: jax.Array, mode: Mode) -> Measurement:
    """Graph size, compile time and evaluation time of the cycle table."""
    scalar = jnp.int32(0)

    def make():
        return lambda tbl, t: tbl(t)

    eqns = count_eqns(jax.make_jaxpr(make())(table, scalar).jaxpr)
    compiles = [_compile_seconds(make, (table, scalar)) for _ in range(mode.compile_repeats)]
    compile_s = min(c[0] for c in compiles)  # other load only ever adds time
    hlo_ops = count_hlo_ops(compiles[0][1].as_text())
    eval_s, values = _eval_seconds(jax.jit(make()), (table, steps), mode.eval_repeats)
    return Measurement(eqns, hlo_ops, compile_s, eval_s, values)


def measure_optax(table: CycleTable, steps: jax.Array, mode: Mode) -> Measurement:
    """The same for ``optax.sgdr_schedule`` with the table's cycles."""
    schedule = _optax_schedule(table)
    scalar = jnp.int32(0)

    def make():
        return lambda t: schedule(t)

    eqns = count_eqns(jax.make_jaxpr(make())(scalar).jaxpr)
    compile_s, compiled = _compile_seconds(make, (scalar,))
    eval_s, values = _eval_seconds(jax.jit(jax.vmap(make())), (steps,), mode.eval_repeats)
    return Measurement(eqns, count_hlo_ops(compiled.as_text()), compile_s, eval_s, values)


def _warm_up(steps: int) -> None:
    """Compiles unrelated functions so backend and lowering start-up are not timed."""
    jax.jit(lambda x: jnp.sin(x) * 2.0).lower(jnp.float32(1.0)).compile()
    table = _table(2, steps)
    jax.jit(lambda tbl, t: tbl(t)).lower(table, jnp.int32(0)).compile()
    schedule = _optax_schedule(table)
    jax.jit(lambda t: schedule(t)).lower(jnp.int32(0)).compile()


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _tables(results: dict[int, tuple[Measurement, Measurement | None]], mode: Mode) -> list[str]:
    steps_k = f"{mode.steps // 1000}k"
    rows = []
    for n, (ours, t) in results.items():
        diff = None if t is None else float(np.max(np.abs(ours.values - t.values)))
        rows.append((
            n, ours.eqns, ours.hlo_ops, f"{ours.compile_s:.3f}", f"{ours.eval_s * 1e3:.2f}",
            _fmt(t and t.eqns, "d"), _fmt(t and t.hlo_ops, "d"), _fmt(t and t.compile_s, ".3f"),
            _fmt(t and t.eval_s * 1e3, ".2f"), _ratio(t and t.compile_s, ours.compile_s),
            _ratio(t and t.eval_s, ours.eval_s), _fmt(diff, ".1e")))
    first_ours, t1 = results[CYCLE_COUNTS[0]]
    relative = [
        (n, _ratio(ours.eqns, first_ours.eqns), _ratio(ours.compile_s, first_ours.compile_s),
         _ratio(ours.eval_s, first_ours.eval_s), _ratio(t and t.eqns, t1.eqns),
         _ratio(t and t.compile_s, t1.compile_s), _ratio(t and t.eval_s, t1.eval_s))
        for n, (ours, t) in results.items()]
    return [
        *_report.table(["cycles", "ours eqns", "ours HLO ops", "ours compile [s]",
                        f"ours eval {steps_k} [ms]", "optax eqns", "optax HLO ops",
                        "optax compile [s]", f"optax eval {steps_k} [ms]", "compile optax/ours",
                        "eval optax/ours", "max abs diff"], rows, "r" * 12),
        "",
        f"Relative to {CYCLE_COUNTS[0]} cycle:",
        "",
        *_report.table(["cycles", "ours eqns", "ours compile", "ours eval", "optax eqns",
                        "optax compile", "optax eval"], relative, "r" * 7),
    ]


def _checks(results: dict[int, tuple[Measurement, Measurement | None]]) -> list[tuple[bool, str]]:
    ours = {n: r[0] for n, r in results.items()}
    eqns = sorted({m.eqns for m in ours.values()})
    multi_row_hlo = sorted({m.hlo_ops for n, m in ours.items() if n > 1})
    worst_compile = max(ours.values(), key=lambda m: m.compile_s)
    worst_n = next(n for n, m in ours.items() if m is worst_compile)
    lo, hi = CYCLE_COUNTS[0], CYCLE_COUNTS[-1]
    growth = ours[hi].eval_s / ours[lo].eval_s
    return [
        (len(eqns) == 1, f"graph size constant: jaxpr equations {eqns} for every cycle count"),
        (len(multi_row_hlo) == 1,
         f"HLO ops constant for > 1 cycle: {multi_row_hlo} (a 1-row table lets XLA fold the "
         "search away)"),
        (worst_compile.compile_s <= COMPILE_TARGET_S,
         f"compile <= {COMPILE_TARGET_S} s for every cycle count: worst "
         f"{worst_compile.compile_s:.3f} s at {worst_n} cycles"),
        (growth <= EVAL_GROWTH_TARGET,
         f"eval at {hi} cycles within {EVAL_GROWTH_TARGET:g}x of {lo} cycle: {growth:.2f}x"),
    ]


def run(mode: Mode) -> tuple[list[str], bool]:
    """Runs every measurement; returns the report lines and whether ours met every target."""
    _warm_up(mode.steps)
    steps = jnp.arange(mode.steps, dtype=jnp.int32)
    results: dict[int, tuple[Measurement, Measurement | None]] = {}
    for n in CYCLE_COUNTS:
        table = _table(n, mode.steps)
        ours = measure_ours(table, steps, mode)
        theirs = measure_optax(table, steps, mode) if n <= mode.optax_max_cycles else None
        results[n] = (ours, theirs)
        print(f"  measured {n} cycles", file=sys.stderr, flush=True)
    lines = _tables(results, mode)
    checks = _checks(results)
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}: ours: {text}" for ok, text in checks]
    if mode is not FULL:
        lines.append(f"(mode {mode.name}: the targets are only reported; the exit status is 0)")
    return lines, all(ok for ok, _ in checks)


def describe(mode: Mode) -> str:
    """The ``# mode ...`` line: sizes and repeats."""
    return (f"# mode {mode.name}: {mode.steps:,} steps, {mode.eval_repeats} eval repeats "
            f"(median), best of {mode.compile_repeats} compile(s) for ours, 1 for optax; optax "
            f"up to {mode.optax_max_cycles} cycles; equal cycles, warmup {WARMUP_FRACTION:g}, "
            f"peak {PEAK:g}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 1 in full mode when ours misses a target, else 0."""
    return _report.quick_or_full(
        argv, script="schedule_scaling.py", description=__doc__.splitlines()[0],
        quick_help="smoke-test sizes (~10 s): optax up to 64 cycles, fewer steps and repeats; "
                   "only reports the targets",
        full=FULL, quick=QUICK, describe=describe, run=run)


if __name__ == "__main__":
    sys.exit(main())
