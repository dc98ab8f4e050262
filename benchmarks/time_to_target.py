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
"""

from __future__ import annotations

import argparse
import datetime
import io
import math
import os
import pathlib
import platform
import shlex
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUBMISSIONS = ("nadamw_baseline", "nadamw_cycles", "nadamw_reinit")
EVAL_EVERY = {"digits": 20, "stdlib_lm": 100}


def _fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None or math.isinf(value):
        return "∞"
    return format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["digits", "stdlib_lm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--submissions", nargs="+", default=list(SUBMISSIONS))
    parser.add_argument("--quick", action="store_true",
                        help="digits only, one seed, 2 submissions (a smoke test)")
    parser.add_argument("--experiment_dir", default=None,
                        help="where runs are written (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.workloads, args.seeds = ["digits"], [1]
        args.submissions = ["nadamw_baseline", "nadamw_reinit"]

    import jax

    from algoperf_reinit.runner import parse_flags, run

    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), "
          f"mode {'quick' if args.quick else 'full'}")
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(args.experiment_dir or tmp)
        results: dict[tuple[str, str], list[dict]] = {}
        for workload in args.workloads:
            # Warm-up (not reported): the process's first run also compiles JAX's own
            # small ops for this workload's shapes, which would bias the first submission.
            warm = parse_flags([
                f"--workload={workload}", f"--submission_path={ROOT / 'submissions' / 'nadamw_baseline' / 'submission.py'}",
                "--tuning_ruleset=self", f"--experiment_dir={base}", "--experiment_name=warmup",
                "--max_global_steps=2", "--eval_every_steps=1", "--nosave_checkpoints",
                "--progress=none", "--overwrite"])
            run(warm, out=io.StringIO())
            for seed in args.seeds:
                for name in args.submissions:
                    sub = ROOT / "submissions" / name / "submission.py"
                    flags = parse_flags([
                        f"--workload={workload}", f"--submission_path={sub}",
                        "--tuning_ruleset=self", f"--rng_seed={seed}",
                        f"--experiment_dir={base}", f"--experiment_name={name}_seed{seed}",
                        f"--eval_every_steps={EVAL_EVERY.get(workload, 100)}",
                        "--nosave_checkpoints", "--progress=none", "--overwrite"])
                    start = time.monotonic()
                    (trial,) = run(flags, out=io.StringIO())
                    summary = dict(trial.summary, wall_sec=time.monotonic() - start)
                    results.setdefault((workload, name), []).append(summary)
                    print(f"  {workload} {name} seed {seed}: time_to_target "
                          f"{_fmt(summary['time_to_target_sec'], '.2f')} s, steps "
                          f"{summary['steps_to_target']}, wall {summary['wall_sec']:.1f} s",
                          flush=True)
        for workload in args.workloads:
            print(f"\n### {workload}\n")
            print("| submission | time to target per seed [s] | steps per seed | median [s] "
                  "| ratio to baseline | train-step compiles |")
            print("|---|---|---|---|---|---|")
            medians = {}
            for name in args.submissions:
                runs = results[(workload, name)]
                times = [math.inf if r["time_to_target_sec"] is None else r["time_to_target_sec"]
                         for r in runs]
                medians[name] = statistics.median(times)
            ref = medians.get("nadamw_baseline")
            for name in args.submissions:
                runs = results[(workload, name)]
                ratio = (medians[name] / ref if ref and not math.isinf(ref) else None)
                print(f"| {name} | {', '.join(_fmt(r['time_to_target_sec']) for r in runs)} | "
                      f"{', '.join(str(r['steps_to_target']) for r in runs)} | "
                      f"{_fmt(medians[name])} | {_fmt(ratio, '.2f')} | "
                      f"{', '.join(str(r['train_step_compilations']) for r in runs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
