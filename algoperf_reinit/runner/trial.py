"""One trial: AlgoPerf v0.6's ``train_once`` loop (``ALGOPERF_API.md`` §3.2).

The order of calls, the ``train_state`` keys, the ``eval_results`` entries and the
time accounting follow the real runner:

* ``rng, _ = split(PRNGKey(seed))``; ``data_rng, opt_init_rng, model_init_rng,
  rng = split(rng, 4)``; per step ``split(fold_in(rng, global_step), 4)`` gives
  the data-selection, update, prepare-for-eval and eval keys;
* timed: ``data_selection`` + ``update_params`` (+ ``prepare_for_eval`` before an
  eval); untimed: evaluation, CSV logging and checkpoints. Unlike the harness we
  wait for the update's arrays before stopping the clock
  (``jax.block_until_ready``), so asynchronous dispatch cannot move training time
  into the untimed eval;
* an eval at step 1, then every ``eval_period_time_sec`` of wall time (or every
  ``--eval_every_steps`` steps), and a final one when the run ends by
  ``max_global_steps`` or ``TrainingCompleteError``; the time budget
  (``max_allowed_runtime_sec``, ×1.5 for self-tuning) is checked at those
  points only, and exceeding it ends the run without that eval;
* the run stops when both the validation and the test targets are met, unless
  ``--continue_past_target``.

The training stream is indexed by step (``_build_input_queue(...,
start_step=global_step)``), so a resumed run sees the same batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import sys
import time
import types
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import jax

from algoperf_reinit._records import jsonable
from algoperf_reinit.run_protocol import RUN_DIR_ENV, TIMING_KEYS
from algoperf_reinit.runner import checkpoint as ckpt
from algoperf_reinit.runner.artifacts import (
    artifact_patterns,
    report_new_rows,
    seen_rows,
    truncate_artifacts,
)
from algoperf_reinit.runner.compilations import CompileCounter
from algoperf_reinit.runner.experiment import ARTIFACTS_KEY, run_metadata, write_json
from algoperf_reinit.runner.metrics import (
    EVAL_CSV,
    MEASUREMENTS_CSV,
    MetricLogger,
    read_csv,
    row_step,
    truncate_csv,
)
from algoperf_reinit.runner.progress import Progress

__all__ = [
    "TRAIN_STEP_NAME",
    "TrialResult",
    "TrialSetup",
    "eval_metric_rows",
    "first_target_eval",
    "run_trial",
    "summarize",
]

TRAIN_STEP_NAME = "jit(train_step)"
SUMMARY_JSON = "summary.json"


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs besides the workload and the submission.

    Attributes:
      trial_dir: ``.../<workload>_jax/trial_<k>``.
      hparams: the ``Hyperparameters`` namedtuple, or ``None`` (self-tuning).
      rng_seed: the seed (never 0 here: the caller drew a random one).
      global_batch_size, eval_batch_size: from the submission.
      budget_sec: the submission-time budget.
      max_global_steps: step limit or ``None``.
      eval_every_steps: step-based eval cadence, or ``None`` for wall time.
      continue_past_target: keep training after the targets.
      save_checkpoints: checkpoint at every eval and at the end.
      resume: continue from the trial's latest checkpoint if there is one.
      fingerprint: facts a checkpoint must match to be resumed.
      flags: all flag values, for ``flags_<p>.json``.
      progress_mode: see :class:`~algoperf_reinit.runner.progress.Progress`.
    """

    trial_dir: pathlib.Path
    hparams: Any
    rng_seed: int
    global_batch_size: int
    eval_batch_size: int
    budget_sec: float
    max_global_steps: int | None
    eval_every_steps: int | None
    continue_past_target: bool
    save_checkpoints: bool
    resume: bool
    fingerprint: Mapping[str, Any]
    flags: Mapping[str, Any]
    progress_mode: str = "auto"


@dataclasses.dataclass
class TrialResult:
    """What a trial produced (also written to ``summary.json``)."""

    trial_dir: pathlib.Path
    summary: dict[str, Any]
    params: Any
    model_state: Any
    eval_results: list[tuple[int, dict[str, Any]]]


def _is_training_complete(error: BaseException) -> bool:
    return type(error).__name__ == "TrainingCompleteError"


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _align_files_to_checkpoint(trial_dir: pathlib.Path, step: int, artifacts) -> int:
    """Removes rows written after the checkpoint at ``step`` (they will be written again).

    Eval rows up to ``step`` are kept (the checkpoint is saved after its eval);
    rows the submission logged during update ``g`` and artefact rows of update ``g``
    are kept for ``g < step``.
    """
    def is_eval(row):
        return bool(row.get("accumulated_submission_time"))

    dropped = truncate_csv(trial_dir / EVAL_CSV, lambda r: row_step(r) <= step)
    dropped += truncate_csv(trial_dir / MEASUREMENTS_CSV, lambda r: row_step(r) < step or (
        row_step(r) == step and is_eval(r)))
    dropped += truncate_artifacts(trial_dir, artifacts, step)
    return dropped


def _to_jsonable(value: Any) -> Any:
    return jsonable(value, nonfinite="keep")


def _check_fingerprint(checkpoint: ckpt.Checkpoint, fingerprint: Mapping[str, Any]) -> None:
    saved = checkpoint.meta.get("fingerprint", {})
    current = _to_jsonable(dict(fingerprint))
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        raise ckpt.CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} belongs to another run ("
            + "; ".join(diffs) + "); resume with the flags it was written with, or pass "
            "--overwrite or another --experiment_name to start a new run")


def first_target_eval(workload: Any, eval_results: list[tuple[int, Mapping[str, Any]]]
                      ) -> tuple[int, Mapping[str, Any]] | None:
    """The first eval meeting the validation target (AlgoPerf scoring's ``>=``/``<=``)."""
    for step, result in eval_results:
        if workload.has_reached_validation_target(result):
            return step, result
    return None


def summarize(workload: Any, eval_results: list[tuple[int, Mapping[str, Any]]], *,
              global_step: int, compile_summary: Mapping[str, Any],
              train_state: Mapping[str, Any], stop_reason: str) -> dict[str, Any]:
    """The trial's ``summary.json`` content."""
    hit = first_target_eval(workload, eval_results)
    train_step_compiles = sum(
        n for name, n in compile_summary.get("by_function", {}).items() if name == TRAIN_STEP_NAME)
    return {
        "target_metric": f"validation/{workload.target_metric_name}",
        "target_value": workload.validation_target_value,
        "target_lower_is_better": workload.target_metric_lower_is_better,
        "reached": hit is not None,
        "time_to_target_sec": None if hit is None else float(hit[1]["score"]),
        "steps_to_target": None if hit is None else int(hit[0]),
        "global_steps": int(global_step),
        "num_evals": len(eval_results),
        "final_eval": dict(eval_results[-1][1]) if eval_results else None,
        "accumulated_submission_time": train_state["accumulated_submission_time"],
        "accumulated_eval_time": train_state["accumulated_eval_time"],
        "stop_reason": stop_reason,
        "train_step_compilations": train_step_compiles,
        "compilations": dict(compile_summary),
    }


def run_trial(workload: Any, submission: Any, setup: TrialSetup, *,
              run_dir_env: str = RUN_DIR_ENV,
              out: TextIO | None = None) -> TrialResult:
    """Runs (or resumes) one trial; see the module docstring.

    Args:
      workload: the workload object.
      submission: a :class:`~algoperf_reinit.runner.loading.Submission`.
      setup: the trial's settings.
      run_dir_env: environment variable through which the submission finds the
        trial directory (set for the duration of the trial).
      out: where progress and messages go (default ``sys.stdout``).

    Returns:
      The :class:`TrialResult`.

    Raises:
      CheckpointError: resuming from a corrupt or mismatched checkpoint (nothing is
        deleted).
    """
    trial_dir = setup.trial_dir
    trial_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if setup.resume:
        path = ckpt.latest_checkpoint(trial_dir)
        if path is not None:
            checkpoint = ckpt.load_checkpoint(path)
            _check_fingerprint(checkpoint, setup.fingerprint)
    if setup.resume and checkpoint is None and (
            read_csv(trial_dir / EVAL_CSV) or (trial_dir / SUMMARY_JSON).exists()):
        raise ValueError(
            f"{str(trial_dir)!r} holds results but no checkpoint to resume from (was it run "
            "with --nosave_checkpoints?); pass --overwrite to run it again from step 0, or "
            "another --experiment_name")
    if checkpoint is not None and checkpoint.meta.get("final") and (
            trial_dir / SUMMARY_JSON).exists():
        summary = json.loads((trial_dir / SUMMARY_JSON).read_text())
        print(f"{trial_dir.name} already finished at step {checkpoint.meta['global_step']} "
              "(its final checkpoint); nothing to resume", file=out or sys.stdout)
        eval_results = [(int(st), dict(r)) for st, r in checkpoint.meta["eval_results"]]
        return TrialResult(trial_dir=trial_dir, summary=summary, params=None,
                           model_state=None, eval_results=eval_results)
    with _env(run_dir_env, str(trial_dir)), CompileCounter() as counter:
        return _run(workload, submission, setup, checkpoint, counter, out)


def _run(workload, submission, setup: TrialSetup, checkpoint, counter, out) -> TrialResult:
    trial_dir = setup.trial_dir
    start_step = int(checkpoint.meta["global_step"]) if checkpoint else 0
    fingerprint = _to_jsonable(dict(setup.fingerprint))
    dropped = 0
    if checkpoint is not None:
        dropped = _align_files_to_checkpoint(trial_dir, start_step, submission.artifacts)
    elif setup.resume and (trial_dir / EVAL_CSV).exists():
        # Killed before its first eval and checkpoint: nothing to keep, start again.
        _align_files_to_checkpoint(trial_dir, 0, submission.artifacts)
        print(f"{trial_dir.name} has no checkpoint to resume from: starting it again at "
              "step 0", file=out or sys.stdout)

    rng = jax.random.PRNGKey(setup.rng_seed)
    rng, _ = jax.random.split(rng, 2)
    data_rng, opt_init_rng, model_init_rng, rng = jax.random.split(rng, 4)
    input_queue = workload._build_input_queue(  # runner-only (AlgoPerf forbids submissions)
        data_rng, "train", None, setup.global_batch_size, start_step=start_step)
    params, model_state = workload.init_model_fn(model_init_rng)
    optimizer_state = submission.init_optimizer_state(
        workload, params, model_state, setup.hparams, opt_init_rng)
    if not (isinstance(optimizer_state, tuple) and len(optimizer_state) == 2):
        raise TypeError("init_optimizer_state must return (optimizer_state, update_fn) "
                        f"(AlgoPerf's JAX contract), got {type(optimizer_state).__name__}")

    train_state: dict[str, Any] = {
        "validation_goal_reached": False, "test_goal_reached": False,
        "is_time_remaining": True, "last_eval_time": 0.0, "training_complete": False,
        "accumulated_submission_time": 0.0, "accumulated_eval_time": 0.0,
        "accumulated_logging_time": 0.0, "last_step_end_time": None,
    }
    eval_results: list[tuple[int, dict[str, Any]]] = []
    global_step, preemption_count = 0, 0
    if checkpoint is not None:
        meta = checkpoint.meta
        params = ckpt.restore_arrays(checkpoint, "params", params)
        model_state = ckpt.restore_arrays(checkpoint, "model_state", model_state)
        opt0 = ckpt.restore_arrays(checkpoint, "optimizer_state", optimizer_state[0])
        optimizer_state = (opt0, optimizer_state[1])
        train_state.update(meta["train_state"])
        eval_results = [(int(s), dict(r)) for s, r in meta["eval_results"]]
        global_step = start_step
        preemption_count = int(meta["preemption_count"]) + 1

    p = preemption_count
    if setup.hparams is not None and not (trial_dir / "hparams.json").exists():
        write_json(trial_dir / "hparams.json", setup.hparams._asdict())
    write_json(trial_dir / f"flags_{p}.json", setup.flags)
    write_json(trial_dir / f"meta_data_{p}.json", run_metadata(
        workload, rng_seed=setup.rng_seed, preemption_count=p,
        extra={"global_batch_size": setup.global_batch_size,
               "eval_batch_size": setup.eval_batch_size,
               "resumed_from_step": start_step if checkpoint else None,
               "fingerprint": fingerprint,
               ARTIFACTS_KEY: list(artifact_patterns(submission.artifacts))}))
    logger = MetricLogger(trial_dir, preemption_count=p)
    workload.attach_metrics_logger(logger)

    total_steps = setup.max_global_steps or workload.step_hint
    progress = Progress(total_steps, setup.budget_sec, mode=setup.progress_mode, stream=out)
    eval_period = float(workload.eval_period_time_sec)
    params_types = workload.model_params_types
    loss_type = workload.loss_type
    first_timed = True
    stop_reason = "training_complete" if train_state["training_complete"] else ""

    def save(step: int, final: bool = False) -> None:
        if not setup.save_checkpoints:
            return
        ckpt.save_checkpoint(
            trial_dir, global_step=step, params=params, model_state=model_state,
            optimizer_state=optimizer_state[0],
            meta={"global_step": step, "preemption_count": p, "final": final,
                  "train_state": train_state, "eval_results": eval_results,
                  "rng_seed": setup.rng_seed,
                  "fingerprint": fingerprint})

    def goals_met() -> bool:
        return (train_state["validation_goal_reached"] and train_state["test_goal_reached"]
                and not setup.continue_past_target)

    seen = seen_rows(trial_dir, submission.artifacts)
    global_start_time = time.time()
    train_state["last_step_end_time"] = global_start_time
    if checkpoint is not None:
        # Wall-clock timestamps of the killed process mean nothing now.
        train_state["last_eval_time"] = global_start_time
        progress.message(f"resumed {trial_dir} from {checkpoint.path.name} "
                         f"(step {global_step}, preemption {p}; {dropped} CSV rows written "
                         "after it dropped, to be written again)")
    try:
        while (train_state["is_time_remaining"] and not goals_met()
               and not train_state["training_complete"]):
            step_rng = jax.random.fold_in(rng, global_step)
            data_select_rng, update_rng, prep_eval_rng, eval_rng = jax.random.split(step_rng, 4)
            with counter.timed(warmup=first_timed):
                batch = submission.data_selection(
                    workload=workload, input_queue=input_queue, optimizer_state=optimizer_state,
                    current_param_container=params, model_state=model_state,
                    hyperparameters=setup.hparams, global_step=global_step,
                    rng=data_select_rng)
                kwargs = dict(
                    workload=workload, current_param_container=params,
                    current_params_types=params_types, model_state=model_state,
                    hyperparameters=setup.hparams, batch=batch, loss_type=loss_type,
                    optimizer_state=optimizer_state, eval_results=eval_results,
                    global_step=global_step, rng=update_rng)
                if submission.update_params_takes_train_state:
                    kwargs["train_state"] = types.MappingProxyType(dict(train_state))
                try:
                    optimizer_state, params, model_state = submission.update_params(**kwargs)
                except Exception as e:
                    if not _is_training_complete(e):
                        raise
                    train_state["training_complete"] = True
                    stop_reason = "training_complete"
                jax.block_until_ready((params, model_state))
            global_step += 1
            if setup.max_global_steps is not None and global_step >= setup.max_global_steps:
                train_state["training_complete"] = True
                stop_reason = stop_reason or "max_global_steps"
            now = time.time()
            train_state["accumulated_submission_time"] += now - train_state["last_step_end_time"]
            progress.update(global_step, logger.latest, train_state["accumulated_submission_time"])

            if setup.eval_every_steps is not None:
                due = global_step == 1 or global_step % setup.eval_every_steps == 0
            else:
                due = now - train_state["last_eval_time"] >= eval_period
            if due or train_state["training_complete"]:
                seen = report_new_rows(trial_dir, submission.artifacts, seen, progress.message)
                if submission.prepare_for_eval is not None:
                    with counter.timed(warmup=first_timed):
                        prep_start = time.time()
                        optimizer_state, params, model_state = submission.prepare_for_eval(
                            workload=workload, current_param_container=params,
                            current_params_types=params_types, model_state=model_state,
                            hyperparameters=setup.hparams, loss_type=loss_type,
                            optimizer_state=optimizer_state, eval_results=eval_results,
                            global_step=global_step, rng=prep_eval_rng)
                        jax.block_until_ready((params, model_state))
                        train_state["accumulated_submission_time"] += time.time() - prep_start
                train_state["is_time_remaining"] = (
                    train_state["accumulated_submission_time"] < setup.budget_sec)
                if not train_state["is_time_remaining"]:
                    stop_reason = "time_budget"
                else:
                    _evaluate(workload, setup, params, model_state, eval_rng, global_step,
                              train_state, eval_results, logger, progress, global_start_time,
                              p)
                    if goals_met():
                        stop_reason = "targets_reached"
                    save(global_step)
            first_timed = False
            train_state["last_step_end_time"] = time.time()
    except KeyboardInterrupt:
        progress.close()
        progress.message(f"interrupted at step {global_step}; everything up to the last "
                         "checkpoint is on disk: rerun with --resume_last_run to continue")
        raise
    progress.close()

    logger.append_scalar_metrics({"score": train_state["accumulated_submission_time"]},
                                 global_step, preemption_count=p)
    compile_summary = counter.summary()
    compile_summary["by_function"] = _by_function(counter)
    summary = summarize(workload, eval_results, global_step=global_step,
                        compile_summary=compile_summary, train_state=train_state,
                        stop_reason=stop_reason or "unknown")
    summary["rng_seed"] = setup.rng_seed
    summary["preemption_count"] = p
    write_json(trial_dir / SUMMARY_JSON, summary)
    save(global_step, final=True)  # after summary.json: a final checkpoint implies a summary
    return TrialResult(trial_dir=trial_dir, summary=summary, params=params,
                       model_state=model_state, eval_results=eval_results)


def _by_function(counter: CompileCounter) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, name, _ in counter.events:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _evaluate(workload, setup, params, model_state, eval_rng, global_step, train_state,
              eval_results, logger, progress, global_start_time, preemption_count) -> None:
    """The untimed eval: metrics, goals, the eval row and a progress message."""
    start = time.time()
    try:
        result = dict(workload.eval_model(setup.eval_batch_size, params, model_state, eval_rng,
                                          None, None, global_step))
    except RuntimeError as e:  # AlgoPerf logs eval RuntimeErrors (OOM) and goes on
        progress.message(f"eval at step {global_step} failed: {e}")
        train_state["last_eval_time"] = time.time()
        return
    result = {k: _to_jsonable(v) for k, v in result.items()}
    train_state["validation_goal_reached"] = (
        train_state["validation_goal_reached"] or workload.has_reached_validation_target(result))
    train_state["test_goal_reached"] = (
        train_state["test_goal_reached"] or workload.has_reached_test_target(result))
    end = time.time()
    train_state["accumulated_eval_time"] += end - start
    result.update(
        score=train_state["accumulated_submission_time"],
        total_duration=end - global_start_time,
        accumulated_submission_time=train_state["accumulated_submission_time"],
        accumulated_eval_time=train_state["accumulated_eval_time"],
        accumulated_logging_time=train_state["accumulated_logging_time"],
    )
    log_start = time.time()
    eval_results.append((global_step, result))
    logger.append_scalar_metrics(result, global_step, preemption_count=preemption_count,
                                 is_eval=True)
    train_state["accumulated_logging_time"] += time.time() - log_start
    train_state["last_eval_time"] = time.time()
    name = f"validation/{workload.target_metric_name}"
    progress.latest_eval = {name: result.get(name)}
    if workload.has_reached_validation_target(result) and first_target_eval(
            workload, eval_results)[0] == global_step:
        progress.message(
            f"target met at the eval of step {global_step}: {name}={result[name]:.4g} "
            f"(target {workload.validation_target_value}) after "
            f"{train_state['accumulated_submission_time']:.2f}s on the clock")


def eval_metric_rows(trial_dir: str | pathlib.Path) -> list[dict[str, str]]:
    """``eval_measurements.csv`` rows without the timing columns (for comparisons)."""
    rows = read_csv(pathlib.Path(trial_dir) / EVAL_CSV)
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS and k != "preemption_count"}
            for r in rows]

