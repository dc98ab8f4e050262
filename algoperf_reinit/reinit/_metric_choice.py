"""Which validation metric drives the plateau detector, chosen from the evaluation itself.

A submission must run on every workload without identifying it, but the workloads
report different validation metrics (AlgoPerf v0.6: ``loss`` everywhere except
librispeech, which reports ``ctc_loss`` and ``wer``). With
``PlateauConfig(metric="auto")`` the metric is the first of
:data:`METRIC_PREFERENCE` that the first evaluation holds:

1. ``validation/loss`` (direction ``min``);
2. another ``validation/*loss`` key, the first in sorted order (``min``);
3. the workload's target metric ``validation/<workload.target_metric_name>``, with
   the direction :func:`metric_direction` gives its name.

A configured metric (``metric="loss"``, ``"validation/accuracy"``...) comes first,
with its configured ``mode``; when the evaluation lacks it the list above applies.
When nothing applies the run goes on without early stops. The choice is a pure
function of the first evaluation's keys (and the workload's target name), so a
resumed run makes the same one; ``model_reinit_schedule`` records it as a
``plateau_metric`` event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from algoperf_reinit.reinit._plateau import AUTO_METRIC, PlateauConfig
from algoperf_reinit.run_protocol import BOOKKEEPING_KEYS

__all__ = ["METRIC_PREFERENCE", "MetricChoice", "choose_plateau_metric", "metric_direction"]

METRIC_PREFERENCE = ("validation/loss", "validation/*loss", "validation/<target metric>")
"""The order in which ``PlateauConfig(metric="auto")`` looks for a metric."""

# Bare metric names (or suffixes) that are better when smaller.
_LOWER_IS_BETTER = ("loss", "error", "error_rate", "wer", "cer", "perplexity", "mse", "mae")


class MetricChoice(NamedTuple):
    """What :func:`choose_plateau_metric` decided.

    Attributes:
      config: the configuration with the chosen ``validation/*`` metric and its
        direction; ``None`` when the evaluation holds no usable metric.
      reason: one line saying why, for the event log.
    """

    config: PlateauConfig | None
    reason: str


def metric_direction(name: str) -> str:
    """``'min'`` for a metric that is better when smaller, else ``'max'``.

    Smaller is better for names ending in one of ``loss``, ``error``, ``error_rate``,
    ``wer``, ``cer``, ``perplexity``, ``mse``, ``mae`` (``ctc_loss``, ``wer``);
    every other metric (``accuracy``, ``ssim``, ``bleu``, ``mean_average_precision``)
    is better when larger.

    Example:
      >>> metric_direction("validation/wer"), metric_direction("ssim")
      ('min', 'max')
    """
    bare = name.rpartition("/")[2].lower()
    return "min" if bare.endswith(_LOWER_IS_BETTER) else "max"


def _usable(metrics: Mapping[str, Any]) -> list[str]:
    """The ``validation/*`` metric keys, sorted (values are checked when fed)."""
    bookkeeping = {f"validation/{k}" for k in BOOKKEEPING_KEYS}
    return sorted(
        k for k in metrics
        if isinstance(k, str) and k.startswith("validation/") and k not in bookkeeping
        and k != "validation/num_examples"
    )


def _target_name(workload: Any) -> str | None:
    try:
        name = getattr(workload, "target_metric_name", None)
    except Exception:  # a workload property may raise before setup
        return None
    return f"validation/{name}" if isinstance(name, str) and name else None


def _candidates(available: list[str], target: str | None) -> list[tuple[str, str, str]]:
    """``(metric, mode, rule)`` in preference order, present in ``available``."""
    found = []
    if "validation/loss" in available:
        found.append(("validation/loss", "min", "validation/loss"))
    found += [(k, "min", "the first other validation/*loss") for k in available
              if k.endswith("loss") and k != "validation/loss"]
    if target is not None and target in available:
        found.append((target, metric_direction(target), "the workload's target metric"))
    return found


def choose_plateau_metric(config: PlateauConfig, metrics: Mapping[str, Any], *,
                          workload: Any = None) -> MetricChoice:
    """Chooses the plateau metric from one evaluation (the run's first).

    Args:
      config: the detector's configuration; ``metric`` is ``"auto"`` or a
        configured ``validation/*`` key (tried first, with ``config.mode``).
      metrics: the evaluation's dict (``validation/*`` keys are read).
      workload: read for ``target_metric_name`` (optional).

    Returns:
      The :class:`MetricChoice`; ``config`` is ``None`` when no metric applies.

    Example:
      >>> cfg = PlateauConfig(metric="auto")
      >>> choice = choose_plateau_metric(cfg, {"validation/ctc_loss": 3.0,
      ...                                      "validation/wer": 1.0})
      >>> choice.config.metric, choice.config.mode
      ('validation/ctc_loss', 'min')
    """
    available = _usable(metrics)
    configured = config.metric != AUTO_METRIC
    if configured and config.metric in available:
        return MetricChoice(config, f"{config.metric} ({config.mode}): the configured metric")
    found = _candidates(available, _target_name(workload))
    missing = f"{config.metric} is not in the evaluation; " if configured else ""
    if not found:
        return MetricChoice(None, (
            f"{missing}no validation/loss, validation/*loss or target metric in the "
            f"evaluation (validation metrics: {available}): no early stops in this run"))
    metric, mode, rule = found[0]
    return MetricChoice(dataclasses.replace(config, metric=metric, mode=mode),
                        f"{metric} ({mode}): {missing}{rule} (preference: "
                        f"{', '.join(METRIC_PREFERENCE)})")
