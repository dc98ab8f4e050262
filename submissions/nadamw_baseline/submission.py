"""NAdamW full-budget baseline: linear warmup + cosine decay over step_hint, no resets

AlgoPerf v0.6 submission (JAX) that only wires library parts: see README.md beside it.
"""

import os

import absl.flags

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.reinit import OptimizerResetPolicy, ReinitConfig
from algoperf_reinit.submission import SubmissionConfig, harness_run_dir, submission_api

CONFIG = SubmissionConfig(
    name="nadamw_baseline",
    schedule=ScheduleConfig(),  # one cycle: linear warmup, cosine to 0
    reinit=ReinitConfig(optimizer=OptimizerResetPolicy(mode="keep")),
)

# The v0.6 API (exact names and parameters) and our runner's artefact hook.
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval, data_selection,
 run_artifacts) = submission_api(CONFIG, harness_run_dir(absl.flags.FLAGS, os.environ))
