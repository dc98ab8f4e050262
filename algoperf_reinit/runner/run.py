"""The runner's entry point: flags → workload, submission, trials → a printed summary.

``python -m algoperf_reinit.runner [flags]`` (or the ``algoperf-reinit-runner``
console script) calls :func:`main`. Everything the user can get wrong — flags, the
submission path, the search space, the workload name, a batch size the devices do
not divide, an existing run directory — is checked before anything is written
(:func:`plan_run`); :func:`main` reports such a mistake (``ValueError`` or
``TypeError``) as ``error: ...`` with exit status 2, and nothing is created: a
new run directory appears only once the first trial's submission has
initialised. Once trials run (:func:`run_plan`), a ``ValueError`` (e.g. a
checkpoint of another run, a trial in use by another process) is reported that
way, and so is a directory that cannot be written (read-only, full: ``OSError``;
no temporary file is left). A fault in the submission's own code (a syntax error
at import, its exception in ``update_params``...) prints that code's traceback,
then one ``error:`` line naming the trial, the directory it left and how to
resume; exit status 1. Decided behaviours: ``--num_tuning_trials`` larger than a
list-form search space is an error; ``--resume_last_run`` without a previous run
says so and starts a new one (so a restart script can always pass it).
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import secrets
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NamedTuple, TextIO

import jax

from algoperf_reinit import _validation as v
from algoperf_reinit.run_protocol import RUN_DIR_ENV, RunArtifact
from algoperf_reinit.runner.artifacts import artifact_patterns
from algoperf_reinit.runner.checkpoint import find_checkpoints
from algoperf_reinit.runner.distributed import agree_int, initialize, is_writer, resolve
from algoperf_reinit.runner.experiment import prepare_workload_dir
from algoperf_reinit.runner.faults import SubmissionFault, fault_line
from algoperf_reinit.runner.flags import (
    DEFAULT_JOB_ARGS,
    RunnerFlags,
    is_default_job,
    parse_flags,
)
from algoperf_reinit.runner.loading import (
    Submission,
    base_workload_name,
    load_submission,
    load_workload,
    resolve_batch_size,
)
from algoperf_reinit.runner.search_space import load_search_space
from algoperf_reinit.runner.trial import TrialResult, TrialSetup, run_trial

__all__ = ["RunPlan", "RunResult", "main", "plan_run", "run", "run_plan"]


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
    seed = agree_int(secrets.randbelow(2**31 - 1) + 1)  # one seed for every process
    print(f"--rng_seed=0: using the random seed {seed} (pass --rng_seed={seed} to repeat)",
          file=out)
    return seed


def _points(flags: RunnerFlags) -> list[tuple[int, Any]]:
    """``(trial index, hyperparameters)`` pairs; ``[(1, None)]`` for self-tuning."""
    if flags.tuning_ruleset == "self":
        return [(1, None)]
    points = load_search_space(flags.search_space_path, flags.num_tuning_trials)
    if len(points) < flags.num_tuning_trials:
        raise v.value_error(
            "--num_tuning_trials", flags.num_tuning_trials,
            f"at most the {len(points)} point(s) listed in {str(flags.search_space_path)!r}",
            fix=f"pass --num_tuning_trials={len(points)} or list more points")
    start = flags.hparam_start_index or 0
    end = len(points) if flags.hparam_end_index is None else flags.hparam_end_index
    if not 0 <= start < end <= len(points):
        raise ValueError(f"--hparam_start_index={flags.hparam_start_index} and "
                         f"--hparam_end_index={flags.hparam_end_index} select no trial of the "
                         f"{len(points)} points (need 0 <= start < end <= {len(points)})")
    return [(i + 1, points[i]) for i in range(start, end)]


def _devices() -> str:
    if jax.process_count() == 1:
        return f"{jax.local_device_count()} device(s)"
    return (f"{jax.device_count()} device(s) of {jax.process_count()} processes "
            f"({jax.local_device_count()} each)")


def _submission_id(path: str) -> str:
    file = pathlib.Path(path)
    return f"{file.parent.name}/{file.name}" if file.suffix == ".py" else path


class RunPlan(NamedTuple):
    """What the flags resolve to, every input checked (:func:`plan_run`).

    Attributes:
      workload: the workload object.
      submission: the loaded :class:`~algoperf_reinit.runner.loading.Submission`.
      batch_size: the global training batch size.
      eval_batch_size: the global eval batch size.
      points: ``(trial index, hyperparameters)`` of every trial to run.
      workload_dir: ``<experiment_dir>/<experiment_name>/<workload>_jax``.
      how: ``'new'``, ``'overwritten'`` or ``'resumed'``.
    """

    workload: Any
    submission: Submission
    batch_size: int
    eval_batch_size: int
    points: list[tuple[int, Any]]
    workload_dir: pathlib.Path
    how: str


def _eval_batch_size(flags: RunnerFlags, workload: Any, submission: Submission,
                     base: str) -> int:
    if submission.get_eval_batch_size is not None:
        return resolve_batch_size(submission.get_eval_batch_size, flags.workload, base,
                                  what="get_eval_batch_size")
    size = int(workload.eval_batch_size)
    if size % jax.local_device_count():
        raise ValueError(f"workload {flags.workload!r} has eval_batch_size {size}, not "
                         f"divisible by the {jax.local_device_count()} local devices")
    return size


def plan_run(flags: RunnerFlags) -> RunPlan:
    """Loads and checks everything the flags name; the only write is the run directory.

    Raises:
      ValueError: for a bad value (an unknown workload, a missing file, a batch size
        the devices do not divide, an existing run directory, ...).
      TypeError: for a value of the wrong kind (a search-space bound that is not a
        number, a batch size that is not an int, a malformed artefact hook, ...).
    """
    workload = load_workload(flags.workload, flags.workload_kwargs_dict)
    submission = load_submission(flags.submission_path)
    base = base_workload_name(flags.workload, workload)
    batch_size = resolve_batch_size(submission.get_batch_size, flags.workload, base)
    eval_batch_size = _eval_batch_size(flags, workload, submission, base)
    points = _points(flags)
    workload_dir = (pathlib.Path(flags.experiment_dir) / flags.experiment_name
                    / f"{flags.workload}_jax")
    if is_writer():
        how = prepare_workload_dir(workload_dir, overwrite=flags.overwrite,
                                   resume_last_run=flags.resume_last_run,
                                   artifact_patterns=artifact_patterns(submission.artifacts))
    else:  # process 0 checks and prepares the directory
        how = ("overwritten" if flags.overwrite else "resumed" if flags.resume_last_run
               else "new")
    return RunPlan(workload, submission, batch_size, eval_batch_size, points, workload_dir, how)


def _trial_setup(flags: RunnerFlags, plan: RunPlan, index: int, hparams: Any,
                 seed: int, budget: float, sample_source: Any = None) -> TrialSetup:
    fingerprint = {
        "workload": flags.workload, "workload_kwargs": flags.workload_kwargs_dict,
        "submission": _submission_id(flags.submission_path),
        "tuning_ruleset": flags.tuning_ruleset,
        "hparams": None if hparams is None else dict(hparams._asdict()),
        "rng_seed": seed, "global_batch_size": plan.batch_size,
        "eval_every_steps": flags.eval_every_steps,
    }
    if sample_source is not None:  # the training stream is not the workload's queue
        fingerprint["sample_source"] = getattr(sample_source, "__qualname__",
                                               type(sample_source).__name__)
    return TrialSetup(
        trial_dir=plan.workload_dir / f"trial_{index}", hparams=hparams, rng_seed=seed,
        global_batch_size=plan.batch_size, eval_batch_size=plan.eval_batch_size,
        budget_sec=budget, max_global_steps=flags.max_global_steps,
        eval_every_steps=flags.eval_every_steps,
        continue_past_target=flags.continue_past_target,
        save_checkpoints=flags.save_checkpoints, resume=flags.resume_last_run,
        fingerprint=fingerprint, flags={**flags.to_json_dict(), "rng_seed_used": seed},
        progress_mode=flags.progress, keep_checkpoints=flags.keep_checkpoints,
        plot_run=flags.plot_run, sample_source=sample_source)


def run_plan(flags: RunnerFlags, plan: RunPlan, *, out: TextIO | None = None,
             sample_source: Any = None) -> RunResult:
    """Runs the trials of a :func:`plan_run` result (``sample_source``: see :func:`run`).

    Raises:
      ValueError: for a checkpoint that cannot be resumed.
    """
    out = out or sys.stdout
    if not is_writer():  # the other processes of a multi-process run print nothing
        out = open(os.devnull, "w")
    seed = _seed(flags, plan.workload_dir, out)
    budget = float(plan.workload.max_allowed_runtime_sec) * (
        1.5 if flags.tuning_ruleset == "self" else 1.0)
    print(f"{flags.workload} with {flags.submission_path}: {len(plan.points)} trial(s), global "
          f"batch {plan.batch_size} on {_devices()}, seed {seed}, "
          f"budget {budget:.0f}s; {plan.how} run directory {plan.workload_dir}", file=out)
    if flags.resume_last_run and plan.how == "new":
        print(f"--resume_last_run: no previous run in {plan.workload_dir}: starting a new "
              "one", file=out)
    results = RunResult()
    results.workload_dir = plan.workload_dir
    for index, hparams in plan.points:
        if hparams is not None:
            print(f"trial {index}: {dict(hparams._asdict())}", file=out)
        setup = _trial_setup(flags, plan, index, hparams, seed, budget, sample_source)
        try:
            result = run_trial(plan.workload, plan.submission, setup, run_dir_env=RUN_DIR_ENV,
                               out=out)
        except SubmissionFault as fault:
            found = find_checkpoints(setup.trial_dir)
            raise fault.located(index, setup.trial_dir if setup.trial_dir.exists() else None,
                                found[-1][0] if found else None) from fault.__cause__
        _print_trial(result, plan.submission.artifacts, out)
        results.append(result)
    return results


def run(flags: RunnerFlags, *, out: TextIO | None = None, sample_source: Any = None
        ) -> RunResult:
    """Runs every trial the flags select (:func:`plan_run`, then :func:`run_plan`).

    Args:
      flags: parsed flags.
      out: where to print (default ``sys.stdout``).
      sample_source: ``(workload, global_batch_size) -> SampleSource``: train on its
        batches instead of the workload's input queue, resumable
        (:mod:`~algoperf_reinit.runner.sample_source`); ``None``: the submission's
        ``sample_source`` hook if it defines one (``run_protocol``), else the queue.

    Returns:
      The trials' results.

    Raises:
      ValueError: for bad input (nothing has been written then), or a checkpoint that
        cannot be resumed.
      TypeError: for input of the wrong kind (nothing has been written then).
    """
    return run_plan(flags, plan_run(flags), out=out, sample_source=sample_source)


def _print_trial(result: TrialResult, artifacts: Sequence[RunArtifact], out: TextIO) -> None:
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
          f"{s['train_step_compilations']} train-step compilation(s), "
          f"{s['compilations_after_warmup']} compilation(s) on the clock after warm-up",
          file=out)
    files = [("eval CSV", d / "eval_measurements.csv"), ("summary", d / "summary.json"),
             ("run plot", d / "run_metrics.png")]
    files += [("submission", path) for pattern in artifact_patterns(artifacts)
              for path in sorted(d.glob(pattern))]
    for label, path in files:
        if path.is_file():
            print(f"  {label + ':':15s}{path}", file=out)


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
    flags = None
    try:
        flags = parse_flags(argv)
        initialize(resolve(flags))  # before anything touches a device
        run_plan(flags, plan_run(flags))
    except SubmissionFault as fault:  # the user's code: its traceback, then one line
        traceback.print_exception(fault.__cause__, file=sys.stderr)
        print(fault_line(fault), file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:  # bad input, a checkpoint of another run...
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _UNWRITABLE or flags is None:
            raise
        print(f"error: {_unwritable(flags, e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
               errno.EFBIG)


def _unwritable(flags: RunnerFlags, error: OSError) -> str:
    return v.message(
        "--experiment_dir", flags.experiment_dir, "a writable directory with free space",
        fix=f"writing {error.filename!r} failed ({error.strerror}); nothing written before is "
            "lost and no temporary file is left: free space or fix the permissions, then "
            "rerun (add --resume_last_run if a trial had started)")
