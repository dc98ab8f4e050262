"""Re-initialisation at cycle boundaries: reset policies and plateau detection.

* Optimizer state: :class:`OptimizerResetPolicy` and :func:`reset_optimizer_state`
  (keep, zero, rescale by alpha, full re-init; explicit step-count policy).
* Parameters and model state: :class:`ParamResetPolicy`,
  :class:`ModelStateResetPolicy`, :func:`reset_params`, :func:`reset_model_state`
  (keep, full re-init, shrink-and-perturb; selective by mask, path or type).
* Plateau detection on validation metrics: :class:`PlateauConfig`,
  :func:`update_plateau`, :func:`feed_eval_results`; the metric chosen from the first
  evaluation by a preference list: :func:`choose_plateau_metric`.
* Early cycle stops with the remaining budget redistributed: :func:`end_cycle_early`.
* All of it tied together, once per step: :func:`model_reinit_schedule` with a
  :class:`ReinitConfig` and a checkpointable :class:`ReinitState`.
"""

from algoperf_reinit.reinit._eval_results import (
    check_eval_results,
    feed_eval_results,
    latest_validation_value,
)
from algoperf_reinit.reinit._metric_choice import (
    METRIC_PREFERENCE,
    MetricChoice,
    choose_plateau_metric,
    metric_direction,
)
from algoperf_reinit.reinit._optimizer_reset import (
    COUNT_POLICIES,
    RESET_MODES,
    OptimizerResetPolicy,
    moment_paths,
    reset_counts,
    reset_optimizer_state,
    scale_moments,
    zero_moments,
)
from algoperf_reinit.reinit._param_policy import (
    MODEL_STATE_MODES,
    PARAM_MODES,
    PARAMETER_TYPE_NAMES,
    ModelStateResetPolicy,
    ParamResetPolicy,
)
from algoperf_reinit.reinit._param_reset import reset_model_state, reset_params
from algoperf_reinit.reinit._param_select import param_reset_mask
from algoperf_reinit.reinit._plateau import (
    AUTO_METRIC,
    PlateauConfig,
    PlateauReason,
    PlateauState,
    init_plateau_state,
    reset_plateau,
    update_plateau,
)
from algoperf_reinit.reinit._redistribute import (
    EarlyStopResult,
    Redistribution,
    end_cycle_early,
)
from algoperf_reinit.reinit._schedule import (
    SCHEMA_VERSION,
    ReinitConfig,
    ReinitEvent,
    ReinitOutput,
    ReinitState,
    check_reinit_state,
    init_reinit_state,
    make_reset_fn,
    model_reinit_schedule,
)
from algoperf_reinit.reinit._strength import metric_strength, strength_from_metric
from algoperf_reinit.reinit._tree import map_counts, map_params_like, params_like_paths

__all__ = [
    "AUTO_METRIC",
    "COUNT_POLICIES",
    "METRIC_PREFERENCE",
    "MODEL_STATE_MODES",
    "PARAMETER_TYPE_NAMES",
    "PARAM_MODES",
    "RESET_MODES",
    "SCHEMA_VERSION",
    "EarlyStopResult",
    "MetricChoice",
    "ModelStateResetPolicy",
    "OptimizerResetPolicy",
    "ParamResetPolicy",
    "PlateauConfig",
    "PlateauReason",
    "PlateauState",
    "Redistribution",
    "ReinitConfig",
    "ReinitEvent",
    "ReinitOutput",
    "ReinitState",
    "check_eval_results",
    "check_reinit_state",
    "choose_plateau_metric",
    "end_cycle_early",
    "feed_eval_results",
    "init_plateau_state",
    "init_reinit_state",
    "latest_validation_value",
    "make_reset_fn",
    "map_counts",
    "map_params_like",
    "metric_direction",
    "metric_strength",
    "model_reinit_schedule",
    "moment_paths",
    "param_reset_mask",
    "params_like_paths",
    "reset_counts",
    "reset_model_state",
    "reset_optimizer_state",
    "reset_params",
    "reset_plateau",
    "scale_moments",
    "strength_from_metric",
    "update_plateau",
    "zero_moments",
]
