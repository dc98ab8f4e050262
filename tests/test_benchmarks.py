"""The one benchmark smoke test: ``benchmarks/schedule_scaling.py --quick`` runs.

It starts the script in a subprocess with this interpreter (about 10 s on 2 CPU
cores) and checks that it exits 0 and prints its table and target lines. It does
not check timings: quick mode only reports them.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "schedule_scaling.py"



@pytest.mark.benchmark  # ``pytest -m "not benchmark"`` skips it
def test_schedule_scaling_quick_mode_runs():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", "cpu")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
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
