"""An AlgoPerf-like runner: any AlgoPerf v0.6 submission file on the bundled workloads.

``python -m algoperf_reinit.runner`` (or ``algoperf-reinit-runner``) runs an
AlgoPerf v0.6 submission the way AlgoPerf's ``submission_runner.py`` does and
writes the same experiment layout, plus ``summary.json``. With no flags it runs
the default job (digits, ``nadamw_reinit``, its whole schedule). It knows no
submission's own files: a submission declares them through
``algoperf_reinit.run_protocol``'s artefact hook (see :mod:`.artifacts`).
"""

from algoperf_reinit.runner.checkpoint import CheckpointError
from algoperf_reinit.runner.compilations import CompileCounter
from algoperf_reinit.runner.distributed import ENV_VARS, Distributed
from algoperf_reinit.runner.faults import SubmissionFault
from algoperf_reinit.runner.flags import DEFAULT_JOB_ARGS, RunnerFlags, parse_flags
from algoperf_reinit.runner.loading import Submission, load_submission, load_workload
from algoperf_reinit.runner.lock import TrialLockedError, trial_lock
from algoperf_reinit.runner.metrics import MetricLogger, read_csv
from algoperf_reinit.runner.run import RunPlan, RunResult, main, plan_run, run, run_plan
from algoperf_reinit.runner.sample_source import SAMPLE_SOURCE_KEY, SampleSource
from algoperf_reinit.runner.search_space import load_search_space, search_space_points
from algoperf_reinit.runner.trial import TrialResult, TrialSetup, eval_metric_rows, run_trial

__all__ = [
    "DEFAULT_JOB_ARGS",
    "ENV_VARS",
    "SAMPLE_SOURCE_KEY",
    "CheckpointError",
    "CompileCounter",
    "Distributed",
    "MetricLogger",
    "RunPlan",
    "RunResult",
    "RunnerFlags",
    "SampleSource",
    "Submission",
    "SubmissionFault",
    "TrialLockedError",
    "TrialResult",
    "TrialSetup",
    "eval_metric_rows",
    "load_search_space",
    "load_submission",
    "load_workload",
    "main",
    "parse_flags",
    "plan_run",
    "read_csv",
    "run",
    "run_plan",
    "run_trial",
    "search_space_points",
    "trial_lock",
]
