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
import functools
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import jax

from algoperf_reinit._records import jsonable
from algoperf_reinit.run_protocol import RUN_DIR_ENV, TIMING_KEYS
from algoperf_reinit.runner.artifacts import artifact_patterns, seen_rows
from algoperf_reinit.runner.compilations import CompileCounter
from algoperf_reinit.runner.distributed import is_writer
from algoperf_reinit.runner.experiment import (
    ARTIFACTS_KEY,
    SUMMARY_JSON,
    make_dirs,
    remove_empty_dirs,
    run_metadata,
    write_json,
)
from algoperf_reinit.runner.faults import SubmissionFault
from algoperf_reinit.runner.lock import trial_lock
from algoperf_reinit.runner.loop import (
    TrainState,
    TrialContext,
    TrialState,
    first_target_eval,
    run_loop,
    save,
)
from algoperf_reinit.runner.metrics import EVAL_CSV, MetricLogger, read_csv
from algoperf_reinit.runner.progress import Progress
from algoperf_reinit.runner.resume import ResumePoint, restore, resume_point, saved_eval_results
from algoperf_reinit.runner.sample_source import open_sample_source

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
      keep_checkpoints: checkpoints kept (the newest ``N``).
      plot_run: draw ``run_metrics.png`` when the trial ends (process 0).
      sample_source: ``(workload, global_batch_size) -> SampleSource`` to train on
        instead of the workload's input queue (``runner.sample_source``), or ``None``:
        the submission's own ``sample_source`` hook (``run_protocol``) if it defines
        one, else the queue.
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
    keep_checkpoints: int = 2
    plot_run: bool = True
    sample_source: Any = None


@dataclasses.dataclass
class TrialResult:
    """What a trial produced (also written to ``summary.json``)."""

    trial_dir: pathlib.Path
    summary: dict[str, Any]
    params: Any
    model_state: Any
    eval_results: list[tuple[int, dict[str, Any]]]


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
        "compilations_after_warmup": int(compile_summary.get("timed_after_warmup", 0)),
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

    The trial directory is locked while the trial runs (:mod:`.lock`); a trial
    that fails before writing anything (e.g. ``init_optimizer_state`` rejecting its
    hyperparameters) removes the directories it created. With several processes
    only process 0 creates, locks and writes the directory (:mod:`.distributed`).

    Raises:
      CheckpointError: resuming when no checkpoint is intact, or from one of another
        run (nothing is deleted).
      TrialLockedError: another live process runs the trial.
      ValueError: resuming a trial that holds results but no checkpoint; or
        ``init_optimizer_state`` raised ``ValueError`` (``TypeError`` likewise).
      SubmissionFault: the submission's code raised (the original is the cause).
    """
    trial_dir, writer = setup.trial_dir, is_writer()
    created = make_dirs(trial_dir) if writer else []

    def say(text: str) -> None:
        print(text, file=out or sys.stdout)

    try:
        with trial_lock(trial_dir, say) if writer else contextlib.nullcontext():
            point = resume_point(trial_dir, resume=setup.resume,
                                 fingerprint=setup.fingerprint,
                                 artifacts=submission.artifacts, say=say, writer=writer)
            if point.finished:
                return TrialResult(trial_dir=trial_dir,
                                   summary=json.loads((trial_dir / SUMMARY_JSON).read_text()),
                                   params=None, model_state=None,
                                   eval_results=list(saved_eval_results(point.checkpoint)))
            with _env(run_dir_env, str(trial_dir)), CompileCounter() as counter:
                ctx, state = _start(workload, submission, setup, point, counter, out)
                return _finish(ctx, run_loop(ctx, state))
    except BaseException:
        remove_empty_dirs(created)  # a trial that wrote nothing leaves no directory
        raise


def _init_optimizer_state(workload: Any, submission: Any, setup: TrialSetup, params: Any,
                          model_state: Any, rng: jax.Array) -> tuple[Any, Any]:
    """The submission's ``init_optimizer_state``; its ``ValueError``/``TypeError`` is
    bad input (e.g. a hyperparameter), anything else a :class:`SubmissionFault`."""
    try:
        optimizer_state = submission.init_optimizer_state(
            workload, params, model_state, setup.hparams, rng)
    except (ValueError, TypeError) as e:
        kind = ValueError if isinstance(e, ValueError) else TypeError
        raise kind(f"{setup.trial_dir.name}: the submission's init_optimizer_state rejected "
                   f"its input: {e}") from e
    except Exception as e:
        raise SubmissionFault("init_optimizer_state") from e
    if not (isinstance(optimizer_state, tuple) and len(optimizer_state) == 2):
        raise TypeError("init_optimizer_state must return (optimizer_state, update_fn) "
                        f"(AlgoPerf's JAX contract), got {type(optimizer_state).__name__}")
    return optimizer_state


def _start(workload: Any, submission: Any, setup: TrialSetup, point: ResumePoint,
           counter: CompileCounter, out: TextIO | None) -> tuple[TrialContext, TrialState]:
    """AlgoPerf's start of ``train_once``: keys, data, init, restore, the run's files."""
    progress = Progress(setup.max_global_steps or workload.step_hint, setup.budget_sec,
                        mode=setup.progress_mode, stream=out)
    progress.phase("initialising", point.start_step)
    rng = jax.random.PRNGKey(setup.rng_seed)
    rng, _ = jax.random.split(rng, 2)
    data_rng, opt_init_rng, model_init_rng, rng = jax.random.split(rng, 4)
    factory = setup.sample_source
    if factory is None and getattr(submission, "sample_source", None) is not None:
        factory = functools.partial(submission.sample_source, data_rng=data_rng)
    if factory is None:
        input_queue = workload._build_input_queue(  # runner-only (AlgoPerf forbids it)
            data_rng, "train", None, setup.global_batch_size, start_step=point.start_step)
    else:
        input_queue = open_sample_source(
            factory, workload, setup.global_batch_size, start_step=point.start_step,
            checkpoint_meta=None if point.checkpoint is None else point.checkpoint.meta)
    params, model_state = workload.init_model_fn(model_init_rng)
    optimizer_state = _init_optimizer_state(workload, submission, setup, params, model_state,
                                            opt_init_rng)
    state = TrialState(global_step=0, params=params, model_state=model_state,
                       optimizer_state=optimizer_state, train=TrainState(), eval_results=(),
                       stop_reason="", seen_rows={})
    preemption_count = 0
    if point.checkpoint is not None:
        saved = restore(point.checkpoint, params, model_state, optimizer_state)
        state = state._replace(global_step=saved.global_step, params=saved.params,
                               model_state=saved.model_state,
                               optimizer_state=saved.optimizer_state,
                               train=TrainState.from_mapping(saved.train_state),
                               eval_results=saved.eval_results)
        preemption_count = saved.preemption_count
    fingerprint = jsonable(dict(setup.fingerprint), nonfinite="keep")
    writer = is_writer()
    if writer:
        _write_run_files(workload, submission, setup, point, preemption_count, fingerprint)
    logger = MetricLogger(setup.trial_dir, preemption_count=preemption_count, write=writer)
    workload.attach_metrics_logger(logger)
    ctx = TrialContext(workload=workload, submission=submission, setup=setup, rng=rng,
                       input_queue=input_queue, logger=logger, progress=progress,
                       counter=counter, preemption_count=preemption_count,
                       fingerprint=fingerprint, start_time=time.time())
    train = state.train._replace(last_step_end_time=ctx.start_time)
    if point.checkpoint is not None:
        # Wall-clock timestamps of the killed process mean nothing now.
        train = train._replace(last_eval_time=ctx.start_time)
        progress.message(f"resumed {setup.trial_dir} from {point.checkpoint.path.name} "
                         f"(step {state.global_step}, preemption {preemption_count}; "
                         f"{point.dropped_rows} CSV rows written after it dropped, to be "
                         "written again)")
    stop_reason = "training_complete" if train.training_complete else ""
    return ctx, state._replace(train=train, stop_reason=stop_reason,
                               seen_rows=seen_rows(setup.trial_dir, submission.artifacts))


def _write_run_files(workload: Any, submission: Any, setup: TrialSetup, point: ResumePoint,
                     preemption_count: int, fingerprint: Mapping[str, Any]) -> None:
    """``hparams.json`` (once), ``flags_<p>.json`` and ``meta_data_<p>.json``."""
    trial_dir, p = setup.trial_dir, preemption_count
    if setup.hparams is not None and not (trial_dir / "hparams.json").exists():
        write_json(trial_dir / "hparams.json", setup.hparams._asdict())
    write_json(trial_dir / f"flags_{p}.json", setup.flags)
    write_json(trial_dir / f"meta_data_{p}.json", run_metadata(
        workload, rng_seed=setup.rng_seed, preemption_count=p,
        extra={"global_batch_size": setup.global_batch_size,
               "eval_batch_size": setup.eval_batch_size,
               "resumed_from_step": point.start_step if point.checkpoint else None,
               "fingerprint": fingerprint,
               ARTIFACTS_KEY: list(artifact_patterns(submission.artifacts))}))


def _finish(ctx: TrialContext, state: TrialState) -> TrialResult:
    """The final ``score`` row, ``summary.json`` and the final checkpoint."""
    train = state.train
    ctx.logger.append_scalar_metrics({"score": train.accumulated_submission_time},
                                     state.global_step, preemption_count=ctx.preemption_count)
    compile_summary = ctx.counter.summary()
    compile_summary["by_function"] = _by_function(ctx.counter)
    eval_results = list(state.eval_results)
    summary = summarize(ctx.workload, eval_results, global_step=state.global_step,
                        compile_summary=compile_summary, train_state=train._asdict(),
                        stop_reason=state.stop_reason or "unknown")
    summary["stop_message"] = state.stop_message or None
    summary["rng_seed"] = ctx.setup.rng_seed
    summary["preemption_count"] = ctx.preemption_count
    if is_writer():
        write_json(ctx.trial_dir / SUMMARY_JSON, summary)
    save(ctx, state, final=True)  # after summary.json: a final checkpoint implies a summary
    if is_writer() and ctx.setup.plot_run:
        _draw_run_plot(ctx)
    return TrialResult(trial_dir=ctx.trial_dir, summary=summary, params=state.params,
                       model_state=state.model_state, eval_results=eval_results)


def _draw_run_plot(ctx: TrialContext) -> None:
    """``run_metrics.png``, after the trial's results are safe: a picture that cannot
    be drawn is reported, never a failed trial."""
    from algoperf_reinit.run_plot import draw_run_plot

    try:
        draw_run_plot(ctx.trial_dir)
    except Exception as e:  # the results are written; only the picture is lost
        ctx.progress.message(f"run_metrics.png not drawn ({type(e).__name__}: {e})")


def _by_function(counter: CompileCounter) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, name, _ in counter.events:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def eval_metric_rows(trial_dir: str | pathlib.Path) -> list[dict[str, str]]:
    """``eval_measurements.csv`` rows without the timing columns (for comparisons)."""
    rows = read_csv(pathlib.Path(trial_dir) / EVAL_CSV)
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS and k != "preemption_count"}
            for r in rows]
