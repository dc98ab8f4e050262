"""How strongly to reset: from the distance of a validation metric to its target.

A reset takes a ``strength`` in ``[0, 1]`` (0 keeps the parameters, 1 applies the
full policy; see ``_param_reset``). :func:`strength_from_metric` turns the latest
validation metric and its target into one, on the host; :func:`metric_strength`
builds the ``strength`` callable of a :class:`~algoperf_reinit.reinit.ReinitConfig`
from it (the seed design's "refactor model parameters according to current reset
metric").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.reinit._eval_results import latest_validation_value
from algoperf_reinit.reinit._plateau import PlateauConfig

__all__ = ["METRIC_MODES", "metric_strength", "strength_from_metric"]

METRIC_MODES = ("min", "max")
"""Directions for :func:`strength_from_metric`: lower is better, higher is better."""

EvalResults = Sequence[tuple[int, Mapping[str, Any]]]


def _scalar(field: str, value: Any, *, finite: bool) -> float:
    """A Python/NumPy number or a 0-d array as a float (NaN passes when not ``finite``)."""
    if hasattr(value, "shape") and not isinstance(value, np.generic):
        if np.ndim(value) != 0:
            raise _validation.type_error(field, value, "a scalar number")
        value = np.asarray(value)[()]
    if not finite and isinstance(value, float | np.floating) and math.isnan(value):
        return math.nan
    try:
        return _validation.real(field, value, finite=finite)
    except TypeError:
        raise _validation.type_error(field, value, "a scalar number") from None


def strength_from_metric(value: Any, target: float, mode: str, *, full_at: float = 1.0) -> float:
    """Reset strength from how far a validation metric is from its target (host side).

    ``gap = (value - target) / |target|`` when lower is better (``mode="min"``: loss,
    error rate, WER), ``(target - value) / |target|`` when higher is better
    (``mode="max"``: accuracy, BLEU, SSIM, mAP); ``|target|`` is replaced by 1 when
    the target is 0. The strength is ``clip(gap / full_at, 0, 1)``: 0 once the
    target is met, 1 when the metric is ``full_at`` (relative) or further from it.
    A NaN metric gives 0 — an unusable measurement triggers no reset (handle
    divergence elsewhere); an infinitely bad one gives 1.

    With the default ``full_at=1``: a validation loss twice its target, or an
    accuracy of 0, resets fully; an accuracy of 0.70 against 0.77 gives 0.09.
    Relative gaps differ a lot between metrics (criteo's loss is within 5 % of its
    target early on), so tune ``full_at`` per metric, e.g. as a hyperparameter.

    Args:
      value: the latest validation metric (e.g. ``eval_results[-1][1]
        ["validation/loss"]``; never a ``test/*`` metric). Python/NumPy/0-d array.
      target: its target, e.g. ``workload.validation_target_value``.
      mode: ``"min"`` or ``"max"``.
      full_at: relative gap at which the strength reaches 1; > 0.

    Returns:
      A Python float in ``[0, 1]`` to pass as ``strength`` to
      :func:`~algoperf_reinit.reinit.reset_params`.

    Raises:
      ValueError: for a ``mode`` not in :data:`METRIC_MODES`, a non-finite ``target``
        or a ``full_at`` that is not a finite number > 0.
      TypeError: for a non-numeric ``value``, ``target`` or ``full_at``, or a
        non-str ``mode``.

    Example:
      >>> strength_from_metric(0.75, target=0.5, mode="min")  # loss 50 % above target
      0.5
      >>> strength_from_metric(0.375, target=0.75, mode="max", full_at=0.25)
      1.0
      >>> strength_from_metric(float("nan"), target=0.5, mode="min")
      0.0
    """
    _validation.choice("mode", mode, METRIC_MODES)
    target = _scalar("target", target, finite=True)
    full_at = _validation.positive("full_at", _scalar("full_at", full_at, finite=True))
    value = _scalar("value", value, finite=False)
    if math.isnan(value):
        return 0.0
    gap = value - target if mode == "min" else target - value
    gap /= abs(target) if target != 0 else 1.0
    return float(min(1.0, max(0.0, gap / full_at)))


def metric_strength(
    mode: str, full_at: float = 1.0, metric: str | None = None
) -> Callable[[EvalResults, Any], float]:
    """A ``strength`` callable driven by the latest validation target metric.

    Resets more strongly the further the metric is from the workload's
    ``validation_target_value`` (see :func:`strength_from_metric`).

    Args:
      mode: ``"min"`` (loss-like) or ``"max"`` (accuracy-like).
      full_at: relative gap to the target at which the strength reaches 1.
      metric: the ``validation/*`` metric; ``None`` means the workload's
        ``target_metric_name``.

    Returns:
      ``strength(eval_results, workload) -> float`` in ``[0, 1]``; 0 before any
      evaluation.

    Raises:
      ValueError: for a bad ``mode``, ``full_at`` or ``metric`` (checked here, when
        the callable is built).
      TypeError: for one of the wrong type.

    Example:
      >>> class Workload:
      ...     target_metric_name, validation_target_value = "loss", 0.5
      >>> metric_strength("min")([(90, {"validation/loss": 0.75})], Workload())
      0.5
    """
    _validation.choice("mode", mode, METRIC_MODES)
    full_at = _validation.positive("full_at", full_at)
    fixed = None if metric is None else PlateauConfig(metric=metric)

    def strength(eval_results: EvalResults, workload: Any) -> float:
        name = getattr(workload, "target_metric_name", None)
        config = fixed if fixed is not None or name is None else PlateauConfig(metric=name)
        if config is None or not eval_results:
            return 0.0
        found = latest_validation_value(eval_results, config)
        if found is None:
            return 0.0
        target = float(workload.validation_target_value)
        return strength_from_metric(found[1], target, mode, full_at=full_at)

    return strength
