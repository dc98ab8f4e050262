"""What a runner and a submission file agree on beyond AlgoPerf's five functions.

Neither side imports the other: our runner (``algoperf_reinit.runner``) loads any
submission by path, and our submissions (``algoperf_reinit.submission``) run under
the real AlgoPerf harness too. Both read the few shared names from here.

1. **The run directory.** While a trial runs, our runner sets the environment
   variable :data:`RUN_DIR_ENV` to the trial directory. A submission file (an entry
   point) may read it and write its own files there; under the real harness the
   variable is unset.
2. **Artefacts.** A submission file may define a module-level function named
   :data:`ARTIFACTS_HOOK`, ``run_artifacts() -> Sequence[RunArtifact]``, listing the
   files it writes into the run directory. The runner then

   * counts them as its own when ``--overwrite`` checks that a directory holds
     only files of a run;
   * on ``--resume_last_run`` from the checkpoint of step ``s``, drops the rows of
     each CSV artefact with a ``step_column`` whose step is ``>= s`` (the resumed run
     writes them again);
   * prints ``message(row, earlier_rows)`` for each new row of an artefact with a
     ``message`` function (skipping rows for which it returns ``None``).

   A submission without the hook works unchanged; its files are then simply not
   the runner's business.
3. **A training stream of its own.** A submission file may define a module-level
   function named :data:`SAMPLE_SOURCE_HOOK`,
   ``sample_source(workload, global_batch_size, data_rng) -> SampleSource`` (see
   :mod:`algoperf_reinit.runner.sample_source`). Our runner then trains on the
   source it returns instead of the workload's input queue (``data_rng`` is the
   trial's data key, the one the queue would have been built from), checkpoints its
   state and restores it on resume. AlgoPerf's harness ignores the hook (a
   submission may not read the dataset there), so only runner-only submissions
   define it.
4. **Eval bookkeeping.** :data:`TIMING_KEYS` and :data:`BOOKKEEPING_KEYS` are the keys
   AlgoPerf's runner (and ours) adds to every eval dict besides the metrics: code
   that looks for metrics skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "ARTIFACTS_HOOK",
    "BOOKKEEPING_KEYS",
    "RUN_DIR_ENV",
    "SAMPLE_SOURCE_HOOK",
    "TIMING_KEYS",
    "RunArtifact",
]

RUN_DIR_ENV = "ALGOPERF_REINIT_RUN_DIR"
"""Environment variable holding the trial directory while our runner runs a trial."""

ARTIFACTS_HOOK = "run_artifacts"
"""Name of the optional module-level function of a submission file (see above)."""

SAMPLE_SOURCE_HOOK = "sample_source"
"""Name of the optional module-level training-stream factory of a submission file."""

TIMING_KEYS = (
    "score",
    "total_duration",
    "accumulated_submission_time",
    "accumulated_eval_time",
    "accumulated_logging_time",
)
"""Time accounting that AlgoPerf's runner adds to every eval dict."""

BOOKKEEPING_KEYS = (*TIMING_KEYS, "global_step", "preemption_count", "num_examples")
"""Every key of an eval dict (after its split prefix) that is not a metric."""

RowMessage = Callable[[Mapping[str, str], Sequence[Mapping[str, str]]], "str | None"]


class RunArtifact(NamedTuple):
    """A file a submission writes into the run directory.

    Attributes:
      name: file name (or glob pattern) relative to the run directory.
      step_column: for a CSV file, the column holding the global step at which a
        row was written; the runner drops rows at or after the resume step.
        ``None`` for other files.
      message: for a CSV file, ``message(row, earlier_rows) -> str | None``: the
        progress line the runner prints when the row appears (``earlier_rows`` are
        the rows before it), or ``None`` to print nothing.
    """

    name: str
    step_column: str | None = None
    message: RowMessage | None = None
