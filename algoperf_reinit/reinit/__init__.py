"""Re-initialisation at cycle boundaries: reset policies and plateau detection.

* Optimizer state: :class:`OptimizerResetPolicy` and :func:`reset_optimizer_state`
  (keep, zero, rescale by alpha, full re-init; explicit step-count policy).
* Parameters and model state: :class:`ParamResetPolicy`,
  :class:`ModelStateResetPolicy`, :func:`reset_params`, :func:`reset_model_state`
  (keep, full re-init, shrink-and-perturb; selective by mask, path or type).
* Plateau detection on validation metrics: :class:`PlateauConfig`,
  :func:`update_plateau`, :func:`feed_eval_results`.
"""

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
from algoperf_reinit.reinit._param_reset import (
    MODEL_STATE_MODES,
    PARAM_MODES,
    PARAMETER_TYPE_NAMES,
    ModelStateResetPolicy,
    ParamResetPolicy,
    param_reset_mask,
    reset_model_state,
    reset_params,
    strength_from_metric,
)
from algoperf_reinit.reinit._plateau import (
    PlateauConfig,
    PlateauReason,
    PlateauState,
    feed_eval_results,
    init_plateau_state,
    latest_validation_value,
    reset_plateau,
    update_plateau,
)
from algoperf_reinit.reinit._tree import map_counts, map_params_like, params_like_paths

__all__ = [
    "COUNT_POLICIES",
    "MODEL_STATE_MODES",
    "PARAMETER_TYPE_NAMES",
    "PARAM_MODES",
    "RESET_MODES",
    "ModelStateResetPolicy",
    "OptimizerResetPolicy",
    "ParamResetPolicy",
    "PlateauConfig",
    "PlateauReason",
    "PlateauState",
    "feed_eval_results",
    "init_plateau_state",
    "latest_validation_value",
    "map_counts",
    "map_params_like",
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
