"""Benchmark smoke tests: each benchmark's ``--quick`` mode runs; the shared ``_report``.

Each smoke test starts a script in a subprocess with this interpreter (about 5 s
for ``schedule_scaling.py``, 8 s for ``reinit_overhead.py`` on 2 idle CPU cores)
and checks that it exits 0 and prints its header, tables and target lines. They do
not check timings: quick mode only reports them.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "schedule_scaling.py"
REINIT_SCRIPT = ROOT / "benchmarks" / "reinit_overhead.py"


def _run_quick(script: pathlib.Path) -> str:
    """Runs ``script --quick`` from the repository root; returns its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", "cpu")
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.benchmark  # ``pytest -m "not benchmark"`` skips it
def test_schedule_scaling_quick_mode_runs():
    out = _run_quick(SCRIPT)
    assert out.startswith(f"$ {sys.executable} ")
    assert "--quick" in out.splitlines()[0]
    assert "| cycles | ours eqns |" in out
    rows = [line for line in out.splitlines() if line.startswith("| 1024 |")]
    assert len(rows) == 2  # absolute table and relative table
    assert "| 64 |" in out
    # optax stops at 64 cycles in quick mode.
    assert rows[0].count("—") >= 4
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS:", "FAIL:"))]
    assert len(verdicts) == 4
    assert any("graph size constant" in line for line in verdicts)


@pytest.mark.benchmark
def test_reinit_overhead_quick_mode_runs():
    out = _run_quick(REINIT_SCRIPT)
    lines = out.splitlines()
    assert out.startswith(f"$ {sys.executable} ")
    assert "--quick" in lines[0]
    assert "mode quick" in lines[2]
    # Part 1: one row per loop, with a ms/step median and the ratio to plain.
    for loop in ("optax", "plain", "table", "ours"):
        assert any(line.startswith(f"| {loop} |") for line in lines), loop
    plain = next(line for line in lines if line.startswith("| plain |"))
    assert plain.endswith("| 1.0000 [1.0000–1.0000] |")
    assert "Host call `model_reinit_schedule` on an ordinary step" in out
    # Part 2: the reset costs; part 3: one row per design.
    assert "| whole call [ms] |" in out
    ours = next(line for line in lines if line.startswith("| ours (table"))
    seed = next(line for line in lines if line.startswith("| seed ("))
    # cycles, early stops, resets, jitted steps, traces, compile events, cache size.
    ours_counts = [cell.strip() for cell in ours.split("|")[2:9]]
    seed_counts = [cell.strip() for cell in seed.split("|")[2:9]]
    assert int(ours_counts[1]) >= 1 and int(ours_counts[2]) >= 2, ours
    assert ours_counts[3:6] == ["1", "1", "1"], ours  # one jitted step, traced and compiled once
    assert int(seed_counts[3]) == int(seed_counts[1]) + 1, seed  # one more per early stop
    verdicts = [line for line in lines if line.startswith(("PASS:", "FAIL:"))]
    assert len(verdicts) == 3
    assert verdicts[1].startswith("PASS: ours: the train step compiles once")
    assert verdicts[2].startswith("PASS: ours: the run has >= 3 cycles")
    assert "the exit status is 0" in out


@pytest.mark.benchmark
def test_time_to_target_quick_mode_runs():
    out = _run_quick(ROOT / "benchmarks" / "time_to_target.py")
    lines = out.splitlines()
    assert out.startswith(f"$ {sys.executable} ") and "--quick" in lines[0]
    assert "mode quick" in lines[1]
    rows = {line.split("|")[1].strip(): line for line in lines
            if line.startswith("| nadamw_")}
    assert set(rows) == {"nadamw_baseline", "nadamw_reinit"}
    cells = [c.strip() for c in rows["nadamw_baseline"].split("|")[1:-1]]
    assert cells[4] == "1.00"  # the baseline's ratio to itself
    assert cells[5] == "1"  # one train-step compilation
    assert float(cells[3]) > 0


@pytest.mark.benchmark
def test_data_efficiency_quick_mode_runs():
    out = _run_quick(ROOT / "benchmarks" / "data_efficiency.py")
    lines = out.splitlines()
    assert out.startswith(f"$ {sys.executable} ") and "--quick" in lines[0]
    assert "mode quick" in lines[1]
    assert any(line.startswith("target procedure: baseline median final validation/loss")
               for line in lines)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in lines if line.startswith(("| nadamw_baseline", "| data_efficient_lm"))}
    assert set(rows) == {"nadamw_baseline", "data_efficient_lm"}
    assert rows["nadamw_baseline"][6] == "1.00"  # the baseline's own final loss, ratio 1
    assert rows["nadamw_baseline"][9].endswith("(1.00x)")
    # Two steps at the curriculum's first length, 64 of 256: a quarter of the tokens.
    assert rows["data_efficient_lm"][9].endswith("(0.25x)")
    assert rows["data_efficient_lm"][11] == "1"  # one train-step compilation


def test_data_efficiency_target_procedure_rounds_the_median_up():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "_data_efficiency", ROOT / "benchmarks" / "data_efficiency.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    runs = [{"final_loss": x} for x in (2.1319, 2.1937, 2.1517)]
    assert module.procedure_target(runs) == (2.1517, 2.16)
    assert module.procedure_target([{"final_loss": 2.15}])[1] == 2.15  # already on the grid
    record = {"curve": [(1, 5.0, 6.3, 0, 0), (40, 48.0, 2.9, 0, 0), (80, 98.0, 2.15, 0, 0)]}
    assert module.time_to(record, 2.16) == (98.0, 80)
    assert module.time_to(record, 2.0) == (float("inf"), None)


def _report_module():
    spec = importlib.util.spec_from_file_location("_report", ROOT / "benchmarks" / "_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_header_names_command_versions_and_mode():
    report = _report_module()
    command, machine = report.header("x.py", ["--quick"], mode="quick")
    assert command == "$ x.py --quick"
    assert machine.startswith("# ") and " UTC; python " in machine
    for name in report.PACKAGES:
        assert f" {name} " in machine
    assert machine.endswith("; mode quick")
    assert report.footer(0.0).startswith("# total ")


def test_report_table_is_markdown_and_checks_its_shape():
    report = _report_module()
    assert report.table(["a", "b"], [[1, "x"], (2.5, None)], "lr") == [
        "| a | b |", "|---|---:|", "| 1 | x |", "| 2.5 | None |"]
    with pytest.raises(ValueError, match="align must be one of"):
        report.table(["a", "b"], [], "l")
    with pytest.raises(ValueError, match="a row must have 2 cells"):
        report.table(["a", "b"], [[1]], "ll")


def test_report_compile_log_counts_through_the_runners_counter():
    import jax
    import jax.numpy as jnp

    report = _report_module()

    def train_step(x):
        return x * 2

    with report.CompileLog() as log:
        step = jax.jit(train_step)
        step(jnp.ones(3)).block_until_ready()
        mark = log.mark()
        step(jnp.ones(3)).block_until_ready()  # cached
        step(jnp.ones(4)).block_until_ready()  # new shape
    compiles, seconds = log.since(mark, "train_step")
    assert compiles == 1 and seconds > 0
    assert log.since(0, "train_step")[0] == 2
    assert log.since(0, "no_such_function") == (0, 0)
    assert log.counter.summary()["total"] >= 2


@pytest.mark.benchmark
def test_curriculum_sampler_quick_mode_runs():
    out = _run_quick(ROOT / "benchmarks" / "curriculum_sampler.py")
    lines = out.splitlines()
    assert out.startswith(f"$ {sys.executable} ") and "--quick" in lines[0]
    assert lines[1].endswith("; mode quick") and lines[2].startswith("# mode quick: ")
    gather = lines[:next(i for i, line in enumerate(lines) if line.startswith("## 2."))]
    for batch in (256, 4096):
        rows = {line.split("|")[2].strip(): line for line in gather
                if line.startswith(f"| {batch} | ")}
        assert set(rows) == {"ours, replicated", "ours, sharded", "plain jnp.take",
                             "host check only"}, rows
        assert rows["plain jnp.take"].endswith("| 1.00x |")
    verdicts = [line for line in lines if line.startswith(("PASS:", "FAIL:"))]
    assert len(verdicts) == 1 and "device gather (replicated) at batch 4096" in verdicts[0]
    for mode, shape in (("seqlen_truncate", "64x512 -> 64x256"),
                        ("seqlen_reshape", "64x512 -> 256x128")):
        assert sum(line.startswith(f"| {mode} | {shape} |") for line in lines) == 3
    assert "## 3. Host side" in out
    sampler_rows = [line for line in lines if line.startswith(("| steps 1-", "| after "))]
    assert len(sampler_rows) == 6  # per G: writer and memory-only during, writer after
    assert sum("| rank > 0 (memory) |" in line for line in sampler_rows) == 2
    (target,) = [line for line in lines if line.startswith("Sampler target >= 1M ids/s")]
    assert "G=256: " in target and "G=4096: " in target
    assert "### Analyzer (100,000 samples" in out and "| vocab_rarity | 100,000 |" in out


@pytest.mark.benchmark
def test_random_ltd_quick_mode_runs():
    out = _run_quick(ROOT / "benchmarks" / "random_ltd.py")
    lines = out.splitlines()
    assert out.startswith(f"$ {sys.executable} ") and "--quick" in lines[0]
    assert lines[1].endswith("; mode quick") and lines[2].startswith("# mode quick: ")
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    for name in ("dense", "masking 50 %", "gather/scatter 25%", "gather/scatter 50%",
                 "gather/scatter 75%", "random-LTD, bucketed"):
        assert name in rows, name
    assert rows["dense"].split("|")[3].strip() == "1.00x"  # the dense block's own ratio
    flop_ratio = float(rows["gather/scatter 50%"].split("|")[4].strip().rstrip("x"))
    assert flop_ratio == pytest.approx((128 * 24 * 64**2 + 4 * 128**2 * 64)
                                       / (64 * 24 * 64**2 + 4 * 64**2 * 64), abs=0.01)
    verdicts = [line for line in lines if line.startswith(("PASS:", "FAIL:"))]
    assert len(verdicts) == 1 and "keep 50 %" in verdicts[0]
    assert "within the bound of 8: True" in out
