"""The AlgoPerf v0.6 submission API over our schedules and resets.

Submission files in ``submissions/`` build a :class:`CycleSubmission` from a
:class:`SubmissionConfig` and forward the API functions to it; the logic lives here.
"""

from algoperf_reinit.submission._curriculum import curriculum_submission_api
from algoperf_reinit.submission._events import (
    EVENT_COLUMNS,
    EVENTS_FILE,
    EventLog,
    event_message,
    is_writer,
    run_artifacts,
)
from algoperf_reinit.submission._hparams import HParams, resolve_hparams
from algoperf_reinit.submission._run_dir import RUN_DIR_ENV, harness_run_dir, resolve_run_dir
from algoperf_reinit.submission._step import (
    StepOutput,
    batch_mesh,
    batch_sharded,
    clip_by_global_norm,
    keep_model_state_shapes,
    make_train_step,
    replicated,
    training_complete_error,
)
from algoperf_reinit.submission._submission import (
    DEFAULT_BATCH_SIZES,
    CycleSubmission,
    Stepper,
    SubmissionAPI,
    SubmissionConfig,
    SubmissionState,
    submission_api,
)

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "EVENTS_FILE",
    "EVENT_COLUMNS",
    "RUN_DIR_ENV",
    "CycleSubmission",
    "EventLog",
    "HParams",
    "StepOutput",
    "Stepper",
    "SubmissionAPI",
    "SubmissionConfig",
    "SubmissionState",
    "batch_mesh",
    "batch_sharded",
    "clip_by_global_norm",
    "curriculum_submission_api",
    "event_message",
    "harness_run_dir",
    "is_writer",
    "keep_model_state_shapes",
    "make_train_step",
    "replicated",
    "resolve_hparams",
    "resolve_run_dir",
    "run_artifacts",
    "submission_api",
    "training_complete_error",
]
