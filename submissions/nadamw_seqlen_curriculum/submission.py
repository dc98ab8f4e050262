"""NAdamW baseline + a sequence-length curriculum in data_selection (DeepSpeed JSON config)

AlgoPerf v0.6 submission (JAX) that only wires library parts: the NAdamW baseline of
``submissions/nadamw_baseline`` and a ``seqlen_truncate`` curriculum configured by
``data_efficiency.json`` beside this file; see README.md beside it.
"""

import os
import pathlib

import absl.flags

from algoperf_reinit import ScheduleConfig
from algoperf_reinit.data_efficiency import SeqlenSelection
from algoperf_reinit.reinit import OptimizerResetPolicy, ReinitConfig
from algoperf_reinit.submission import (
    SubmissionConfig,
    curriculum_submission_api,
    harness_run_dir,
)

CONFIG = SubmissionConfig(
    name="nadamw_seqlen_curriculum",
    schedule=ScheduleConfig(),  # one cycle: linear warmup, cosine to 0
    reinit=ReinitConfig(optimizer=OptimizerResetPolicy(mode="keep")),
)
# Difficulty d in 8..64 -> ceil(d / 64 * S) tokens of a batch of length S; parsed and
# checked here, at import.
CURRICULUM = SeqlenSelection(pathlib.Path(__file__).with_name("data_efficiency.json"),
                             unit="fraction")

# The v0.6 API (exact names and parameters) and our runner's artefact hook.
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval, data_selection,
 run_artifacts) = curriculum_submission_api(CONFIG, CURRICULUM,
                                            harness_run_dir(absl.flags.FLAGS, os.environ))
