"""NAdamW full-budget baseline: linear warmup + cosine decay over step_hint, no resets

AlgoPerf v0.6 submission (JAX). This file only wires library parts; the logic is in
``algoperf_reinit.submission``. See README.md beside this file.
"""

import os

import absl.flags

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.reinit import OptimizerResetPolicy, ReinitConfig
from algoperf_reinit.submission import (
    RUN_DIR_ENV,
    CycleSubmission,
    SubmissionConfig,
    resolve_run_dir,
    submission_api,
)

SUBMISSION = CycleSubmission(SubmissionConfig(
    name="nadamw_baseline",
    schedule=ScheduleConfig(),  # one cycle: linear warmup, cosine to 0
    reinit=ReinitConfig(optimizer=OptimizerResetPolicy(mode="keep")),
))


def _run_dir(workload, hyperparameters, rng):
    """Run directory: our runner's env var, else the harness's flags, else the cwd."""
    flags = absl.flags.FLAGS

    def flag(name):
        return getattr(flags, name, None) if name in flags and flags.is_parsed() else None

    name = flag("workload") or type(workload).__name__
    return resolve_run_dir(name, hyperparameters, rng, env_run_dir=os.environ.get(RUN_DIR_ENV),
                           experiment_dir=flag("experiment_dir"),
                           experiment_name=flag("experiment_name"))


# The AlgoPerf v0.6 API: get_batch_size, init_optimizer_state, update_params,
# prepare_for_eval, data_selection (exact parameter names; see SubmissionAPI).
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval,
 data_selection) = submission_api(SUBMISSION, run_dir=_run_dir)
