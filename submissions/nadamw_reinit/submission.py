"""The seed's submission done right: cycles with per-cycle alterations, plateau-ended
cycles, shrink-and-perturb of the parameters and momentum rescaling at every new cycle

AlgoPerf v0.6 submission (JAX) that only wires library parts: see README.md beside it.
"""

import os

import absl.flags

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.reinit import (
    ModelStateResetPolicy,
    OptimizerResetPolicy,
    ParamResetPolicy,
    PlateauConfig,
    Redistribution,
    ReinitConfig,
)
from algoperf_reinit.submission import SubmissionConfig, harness_run_dir, submission_api

CONFIG = SubmissionConfig(
    name="nadamw_reinit",
    schedule=ScheduleConfig(
        cycle_fractions=(0.25, 0.35, 0.4),
        lr_scales=(1.0, 0.7, 0.5),          # the seed's alter_lr, relative to the tuned lr
        alter_warmup=(0.0, 0.02, 0.02),     # the seed's alter_warmupfactor
    ),
    reinit=ReinitConfig(
        params=ParamResetPolicy("shrink_perturb", shrink=0.8, perturb=0.1,
                                model_state=ModelStateResetPolicy("keep")),
        optimizer=OptimizerResetPolicy(mode="rescale", alpha=0.5),  # momentum * alpha
        plateau=PlateauConfig(metric="auto", ema=0.5, patience=3, rel_threshold=1e-3,
                              min_evals=3, cooldown=1),
        redistribution=Redistribution(rule="proportional"),
    ),
)

# The v0.6 API (exact names and parameters) and our runner's artefact hook.
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval, data_selection,
 run_artifacts) = submission_api(CONFIG, harness_run_dir(absl.flags.FLAGS, os.environ))
