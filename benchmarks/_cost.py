"""Times to target that do not depend on when a trial ran: each arm's cost curve.

A ``--full`` study runs for longer than one machine lives, so its trials run in
several sessions, on machines whose speed differs: the same baseline run (same
seed, same code) took 1.41x longer on 2026-12-02 at 16:33 UTC than at 10:06 UTC.
Measured times of trials from different sessions do not compare.

What does compare is the step at which a trial first meets the target (a function
of the trial's seed, point and code, not of the machine's speed) and what each arm's
steps cost on one machine. An arm's **cost curve** on a workload is its submission
time at each eval step of one run at its default hyperparameters, run to the step
budget (past the target), with every arm's run one after another in one process
(:func:`measure`). A trial's **time on the curve** is the curve's time at the
trial's steps to target (:func:`time_on_curve`): what the trial would have taken on
the machine and at the time the curves were measured — AlgoPerf's time on fixed
hardware, the quantity its scores assume.

It assumes an arm's cost per step does not depend on its hyperparameters. For our
arms that holds to first order: the model, the batch and (for the curricula and
random-LTD) the sequence lengths are functions of the step; what moves with the
hyperparameters is when a plateau ends a cycle, and so when a reset's one-off work
(a few tree maps) happens. An ablation arm without a curve of its own uses its base
submission's (the same train step; a different reset rule).
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

DIR = "cost_curves"
"""The curves' folder in the study's output directory: ``<workload>/<arm>.json``, one
file per curve (processes measuring different arms never write the same file)."""


def key(workload: str, arm: str) -> str:
    """The curve's name: ``<workload>/<arm>``."""
    return f"{workload}/{arm}"


def load(folder: pathlib.Path) -> dict[str, dict[str, Any]]:
    """Every curve in ``folder`` (none when it does not exist), by :func:`key`."""
    curves = (json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json")))
    return {key(c["workload"], c["arm"]): c for c in curves}


def save(folder: pathlib.Path, curve: Mapping[str, Any]) -> pathlib.Path:
    """Writes ``curve`` (with its ``workload`` and ``arm``) into ``folder``, atomically
    (an interrupted write loses nothing); returns its path."""
    path = folder / curve["workload"] / f"{curve['arm'].replace(':', '_')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(curve), indent=1, sort_keys=True, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def curve_of(curves: Mapping[str, Mapping[str, Any]], workload: str, arm: str,
             base_of: Mapping[str, str] | None = None) -> Mapping[str, Any] | None:
    """The arm's curve on ``workload``, else its base's (``base_of[arm]``), else ``None``."""
    own = curves.get(key(workload, arm))
    if own is not None or base_of is None or arm not in base_of:
        return own
    return curves.get(key(workload, base_of[arm]))


def time_on_curve(result: Mapping[str, Any], curve: Mapping[str, Any]) -> float:
    """The trial's time to target on ``curve`` (∞ when the trial missed it).

    Raises:
      ValueError: if the trial met the target at a step the curve does not reach
        (the curve was measured with a shorter budget than the trial's).
    """
    if not result["reached"] or result["steps_to_target"] is None:
        return math.inf
    steps, secs = (np.asarray(curve[k], dtype=float) for k in ("steps", "sec"))
    step = float(result["steps_to_target"])
    if step > steps[-1]:
        raise ValueError(f"steps_to_target {step:g} of {result['arm']} on "
                         f"{result['workload']} lies past its cost curve's last step "
                         f"{steps[-1]:g}")
    return float(np.interp(step, steps, secs))


def measure(arm_name: str, submission: pathlib.Path, workload: Any, *, rng_seed: int,
            run: Callable[[list[str]], Any] | None = None) -> dict[str, Any]:
    """One run of the arm at its defaults to the step budget; its cost curve.

    Args:
      arm_name: the arm's name (recorded).
      submission: its ``submission.py``.
      workload: a ``_study.Workload`` (its runner name, kwargs, budget and eval cadence).
      rng_seed: the run's ``--rng_seed``.
      run: the runner (flags → trials); default ``algoperf_reinit.runner``'s.

    Returns:
      ``{"steps": [...], "sec": [...]}`` (submission time at each eval) with the
      run's date, load average and final validation metric.
    """
    if run is None:
        from algoperf_reinit.runner import parse_flags
        from algoperf_reinit.runner import run as runner_run

        def run(flags: list[str]) -> Any:
            return runner_run(parse_flags(flags), out=io.StringIO())

    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        (trial,) = run([
            f"--workload={workload.workload}",
            f"--workload_kwargs={json.dumps(dict(workload.kwargs))}",
            f"--submission_path={submission}", "--tuning_ruleset=self",
            f"--rng_seed={rng_seed}", f"--max_global_steps={workload.max_steps}",
            f"--eval_every_steps={workload.eval_every}", "--continue_past_target",
            f"--experiment_dir={tmp}", "--experiment_name=cost", "--nosave_checkpoints",
            "--noplot_run", "--progress=none", "--overwrite"])
        wall = time.monotonic() - start
    evals = list(trial.eval_results)
    return {"arm": arm_name, "workload": workload.name, "rng_seed": rng_seed,
            "steps": [int(step) for step, _ in evals],
            "sec": [float(r["score"]) for _, r in evals],
            "wall_sec": wall, "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "load_average_1min": os.getloadavg()[0]}
