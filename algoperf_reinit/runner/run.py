"""The runner's entry point: flags → workload, submission, trials → a printed summary.

``python -m algoperf_reinit.runner [flags]`` (or the ``algoperf-reinit-runner``
console script) calls :func:`main`. Everything the user can get wrong — flags, the
submission path, the search space, the workload name, a batch size the devices do
not divide, an existing run directory — is checked before anything is written.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import jax

from algoperf_reinit.runner.experiment import prepare_workload_dir
from algoperf_reinit.runner.flags import (
    DEFAULT_JOB_ARGS,
    RunnerFlags,
    is_default_job,
    parse_flags,
)
from algoperf_reinit.runner.loading import (
    base_workload_name,
    load_submission,
    load_workload,
    resolve_batch_size,
)
from algoperf_reinit.runner.search_space import load_search_space
from algoperf_reinit.runner.trial import TrialResult, TrialSetup, run_trial
from algoperf_reinit.submission import RUN_DIR_ENV

__all__ = ["RunResult", "main", "run"]


class RunResult(list):
    """The :class:`~algoperf_reinit.runner.trial.TrialResult` of every trial, in order,
    with the ``workload_dir`` they were written under."""

    workload_dir: pathlib.Path


def _seed(flags: RunnerFlags, workload_dir: pathlib.Path, out: TextIO) -> int:
    if flags.rng_seed:
        return flags.rng_seed
    if flags.resume_last_run:
        for meta in sorted(workload_dir.glob("trial_*/meta_data_0.json")):
            seed = json.loads(meta.read_text()).get("rng_seed")
            if seed:
                print(f"--rng_seed=0 on resume: using the run's seed {seed} from {meta}",
                      file=out)
                return int(seed)
    seed = secrets.randbelow(2**31 - 1) + 1
    print(f"--rng_seed=0: using the random seed {seed} (pass --rng_seed={seed} to repeat)",
          file=out)
    return seed


def _points(flags: RunnerFlags) -> list[tuple[int, Any]]:
    """``(trial index, hyperparameters)`` pairs; ``[(1, None)]`` for self-tuning."""
    if flags.tuning_ruleset == "self":
        return [(1, None)]
    points = load_search_space(flags.search_space_path, flags.num_tuning_trials)
    start = flags.hparam_start_index or 0
    end = len(points) if flags.hparam_end_index is None else flags.hparam_end_index
    if not 0 <= start < end <= len(points):
        raise ValueError(f"--hparam_start_index={flags.hparam_start_index} and "
                         f"--hparam_end_index={flags.hparam_end_index} select no trial of the "
                         f"{len(points)} points (need 0 <= start < end <= {len(points)})")
    return [(i + 1, points[i]) for i in range(start, end)]


def _submission_id(path: str) -> str:
    file = pathlib.Path(path)
    return f"{file.parent.name}/{file.name}" if file.suffix == ".py" else path


def run(flags: RunnerFlags, *, out: TextIO | None = None) -> RunResult:
    """Runs every trial the flags select.

    Args:
      flags: parsed flags.
      out: where to print (default ``sys.stdout``).

    Returns:
      The trials' results.

    Raises:
      ValueError: for bad input (nothing has been written then), or a checkpoint that
        cannot be resumed.
    """
    out = out or sys.stdout
    workload = load_workload(flags.workload, flags.workload_kwargs_dict)
    submission = load_submission(flags.submission_path)
    base = base_workload_name(flags.workload, workload)
    batch_size = resolve_batch_size(submission.get_batch_size, flags.workload, base)
    if submission.get_eval_batch_size is not None:
        eval_batch_size = resolve_batch_size(submission.get_eval_batch_size, flags.workload,
                                             base, what="get_eval_batch_size")
    else:
        eval_batch_size = int(workload.eval_batch_size)
        if eval_batch_size % jax.local_device_count():
            raise ValueError(f"workload {flags.workload!r} has eval_batch_size "
                             f"{eval_batch_size}, not divisible by the "
                             f"{jax.local_device_count()} local devices")
    points = _points(flags)
    workload_dir = (pathlib.Path(flags.experiment_dir) / flags.experiment_name
                    / f"{flags.workload}_jax")
    how = prepare_workload_dir(workload_dir, overwrite=flags.overwrite,
                               resume_last_run=flags.resume_last_run)
    seed = _seed(flags, workload_dir, out)
    budget = float(workload.max_allowed_runtime_sec) * (
        1.5 if flags.tuning_ruleset == "self" else 1.0)
    print(f"{flags.workload} with {flags.submission_path}: {len(points)} trial(s), global "
          f"batch {batch_size} on {jax.local_device_count()} device(s), seed {seed}, "
          f"budget {budget:.0f}s; {how} run directory {workload_dir}", file=out)
    results = RunResult()
    results.workload_dir = workload_dir
    for index, hparams in points:
        trial_dir = workload_dir / f"trial_{index}"
        if hparams is not None:
            print(f"trial {index}: {dict(hparams._asdict())}", file=out)
        fingerprint = {
            "workload": flags.workload, "workload_kwargs": flags.workload_kwargs_dict,
            "submission": _submission_id(flags.submission_path),
            "tuning_ruleset": flags.tuning_ruleset,
            "hparams": None if hparams is None else dict(hparams._asdict()),
            "rng_seed": seed, "global_batch_size": batch_size,
        }
        setup = TrialSetup(
            trial_dir=trial_dir, hparams=hparams, rng_seed=seed, global_batch_size=batch_size,
            eval_batch_size=eval_batch_size, budget_sec=budget,
            max_global_steps=flags.max_global_steps, eval_every_steps=flags.eval_every_steps,
            continue_past_target=flags.continue_past_target,
            save_checkpoints=flags.save_checkpoints, resume=flags.resume_last_run,
            fingerprint=fingerprint, flags={**flags.to_json_dict(), "rng_seed_used": seed},
            progress_mode=flags.progress)
        result = run_trial(workload, submission, setup, run_dir_env=RUN_DIR_ENV, out=out)
        _print_trial(result, out)
        results.append(result)
    return results


def _print_trial(result: TrialResult, out: TextIO) -> None:
    s = result.summary
    d = result.trial_dir
    if s["reached"]:
        target = (f"reached {s['target_metric']} {'<=' if s['target_lower_is_better'] else '>='}"
                  f" {s['target_value']} after {s['time_to_target_sec']:.2f}s "
                  f"(step {s['steps_to_target']})")
    else:
        target = f"did not reach {s['target_metric']} target {s['target_value']}"
    final = s["final_eval"] or {}
    print(f"{d.name}: {target}; stopped by {s['stop_reason']} at step {s['global_steps']}, "
          f"{s['num_evals']} evals, final {s['target_metric']}="
          f"{final.get(s['target_metric'], float('nan')):.4g}, "
          f"{s['train_step_compilations']} train-step compilation(s)", file=out)
    for label, name in (("schedule plot", "lr_schedule.png"), ("eval CSV", "eval_measurements.csv"),
                        ("events", "events.csv"), ("summary", "summary.json")):
        if (d / name).exists():
            print(f"  {label + ':':15s}{d / name}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        from algoperf_reinit.runner.flags import _parser

        _parser().print_help()
        return 0
    if is_default_job(argv):
        print("no --workload or --submission_path: running the default job, i.e. "
              f"python -m algoperf_reinit.runner {' '.join([*DEFAULT_JOB_ARGS, *argv])}")
    try:
        flags = parse_flags(argv)
        run(flags)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
