"""NAdamW with three cycles that end early on a validation-loss plateau; no resets

AlgoPerf v0.6 submission (JAX) that only wires library parts: see README.md beside it.
"""

import os

import absl.flags

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.reinit import OptimizerResetPolicy, PlateauConfig, Redistribution, ReinitConfig
from algoperf_reinit.submission import SubmissionConfig, harness_run_dir, submission_api

CONFIG = SubmissionConfig(
    name="nadamw_cycles",
    schedule=ScheduleConfig(cycle_fractions=(0.25, 0.35, 0.4)),
    reinit=ReinitConfig(
        optimizer=OptimizerResetPolicy(mode="keep"),
        plateau=PlateauConfig(metric="auto", ema=0.5, patience=3, rel_threshold=1e-3,
                              min_evals=3, cooldown=1),
        redistribution=Redistribution(rule="proportional"),
    ),
)

# The v0.6 API (exact names and parameters) and our runner's artefact hook.
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval, data_selection,
 run_artifacts) = submission_api(CONFIG, harness_run_dir(absl.flags.FLAGS, os.environ))
