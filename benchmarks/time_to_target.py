"""Time-to-target of every submission on the bundled workloads, several seeds.

Runs ``python -m algoperf_reinit.runner`` in this process (``runner.run``) for
each workload, submission and seed, in the order seed → submission, so the
submissions of one seed run next to each other on the same machine state.
Self-tuning ruleset (each submission's documented defaults), evals every
``--eval_every_steps`` steps (untimed, as in AlgoPerf), stopping at the targets as
AlgoPerf's runner does; our submissions end a run themselves when their schedule
(``step_hint`` steps) is over (``TrainingCompleteError``). A short unreported warm-up run
per workload comes first, so that JAX's one-off compilations of its own small ops
do not land on the first measured submission.

Reported per run: ``time_to_target_sec`` (AlgoPerf's score: submission time at
the first eval meeting the validation target, compilation included),
``steps_to_target``, train-step compilations; per submission the median over
seeds and its ratio to ``nadamw_baseline``'s median. A run that misses the
target within the step limit counts as ∞.

Usage (from the repository root)::

  python benchmarks/time_to_target.py [--workloads digits stdlib_lm] [--seeds 1 2 3]
  python benchmarks/time_to_target.py --quick   # digits, one seed, ~10 s
  python benchmarks/time_to_target.py --workloads stdlib_lm --continue_past_target \
      --submissions nadamw_baseline nadamw_seqlen_curriculum   # same step budget
"""

from __future__ import annotations

import argparse
import io
import math
import pathlib
import statistics
import sys
import tempfile
import time

import _report

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUBMISSIONS = ("nadamw_baseline", "nadamw_cycles", "nadamw_reinit")
EVAL_EVERY = {"digits": 20, "stdlib_lm": 100, "stdlib_lm_4x256": 40}


def _fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None or math.isinf(value):
        return "∞"
    return format(value, spec)


def _runner_args(workload: str, submission: str, base: pathlib.Path, name: str,
                 *extra: str) -> list[str]:
    return [f"--workload={workload}",
            f"--submission_path={ROOT / 'submissions' / submission / 'submission.py'}",
            "--tuning_ruleset=self", f"--experiment_dir={base}", f"--experiment_name={name}",
            "--nosave_checkpoints", "--noplot_run", "--progress=none", "--overwrite", *extra]


def measure(args: argparse.Namespace, base: pathlib.Path) -> dict[tuple[str, str], list[dict]]:
    """Runs every workload, seed and submission; returns their summaries (plus wall time)."""
    from algoperf_reinit.runner import parse_flags, run

    results: dict[tuple[str, str], list[dict]] = {}
    for workload in args.workloads:
        # Warm-up (not reported): the process's first run also compiles JAX's own
        # small ops for this workload's shapes, which would bias the first submission.
        run(parse_flags(_runner_args(workload, "nadamw_baseline", base, "warmup",
                                     "--max_global_steps=2", "--eval_every_steps=1")),
            out=io.StringIO())
        for seed in args.seeds:
            for name in args.submissions:
                flags = parse_flags(_runner_args(
                    workload, name, base, f"{name}_seed{seed}", f"--rng_seed={seed}",
                    f"--eval_every_steps={EVAL_EVERY.get(workload, 100)}",
                    *(["--continue_past_target"] if args.continue_past_target else [])))
                start = time.monotonic()
                (trial,) = run(flags, out=io.StringIO())
                summary = dict(trial.summary, wall_sec=time.monotonic() - start)
                results.setdefault((workload, name), []).append(summary)
                print(f"  {workload} {name} seed {seed}: time_to_target "
                      f"{_fmt(summary['time_to_target_sec'], '.2f')} s, steps "
                      f"{summary['steps_to_target']}, wall {summary['wall_sec']:.1f} s",
                      flush=True)
    return results


def workload_table(runs_by_submission: dict[str, list[dict]]) -> list[str]:
    """Per submission: times and steps per seed, the median, its ratio to the baseline."""
    medians = {name: statistics.median(
        math.inf if r["time_to_target_sec"] is None else r["time_to_target_sec"] for r in runs)
        for name, runs in runs_by_submission.items()}
    ref = medians.get("nadamw_baseline")
    rows = []
    for name, runs in runs_by_submission.items():
        ratio = medians[name] / ref if ref and not math.isinf(ref) else None
        rows.append((name, ", ".join(_fmt(r["time_to_target_sec"]) for r in runs),
                     ", ".join(str(r["steps_to_target"]) for r in runs), _fmt(medians[name]),
                     _fmt(ratio, ".2f"),
                     ", ".join(str(r["train_step_compilations"]) for r in runs),
                     ", ".join(_final_loss(r) for r in runs)))
    return _report.table(["submission", "time to target per seed [s]", "steps per seed",
                          "median [s]", "ratio to baseline", "train-step compiles",
                          "final validation target metric per seed (step)"], rows,
                         "lllllll")


def _final_loss(summary: dict) -> str:
    """The last eval's validation target metric and its step, e.g. ``1.402 (2000)``."""
    final = summary.get("final_eval") or {}
    value = final.get(summary["target_metric"])
    return "—" if value is None else f"{value:.3f} ({summary['global_steps']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["digits", "stdlib_lm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--submissions", nargs="+", default=list(SUBMISSIONS))
    parser.add_argument("--quick", action="store_true",
                        help="digits only, one seed, 2 submissions (a smoke test)")
    parser.add_argument("--continue_past_target", action="store_true",
                        help="run every schedule to its end (same step budget), as the "
                             "runner's flag of that name")
    parser.add_argument("--experiment_dir", default=None,
                        help="where runs are written (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.workloads, args.seeds = ["digits"], [1]
        args.submissions = ["nadamw_baseline", "nadamw_reinit"]
    print("\n".join(_report.header("time_to_target.py", argv,
                                   mode="quick" if args.quick else "full")), flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args, pathlib.Path(args.experiment_dir or tmp))
    for workload in args.workloads:
        print(f"\n### {workload}\n")
        print("\n".join(workload_table({name: results[(workload, name)]
                                        for name in args.submissions})))
    print("\n" + _report.footer(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
