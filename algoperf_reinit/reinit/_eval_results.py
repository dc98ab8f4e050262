"""Feeding AlgoPerf's ``eval_results`` to the plateau detector, on the host.

:func:`latest_validation_value` reads AlgoPerf's ``eval_results`` list of
``(global_step, metrics)`` (only ``validation/*`` keys), and
:func:`feed_eval_results` feeds every evaluation newer than
``state.last_fed_step``, so calling it on every training step is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.reinit._plateau import (
    AUTO_METRIC,
    PlateauConfig,
    PlateauState,
    _check_config,
    _i32,
    update_plateau,
)

__all__ = ["check_eval_results", "feed_eval_results", "latest_validation_value"]

_ENTRIES = "eval_results entries"
_ENTRY_RULE = "(global_step, dict) pairs"

# The host-side feed jits the update once per config (config is hashable).
_update_jit = jax.jit(update_plateau, static_argnums=0)


def _validation_value(config: PlateauConfig, step: int, metrics: Any) -> float | None:
    """The configured metric of one eval dict; ``None`` if it has no validation metrics."""
    if not isinstance(metrics, Mapping):
        raise _validation.type_error(_ENTRIES, (step, metrics), _ENTRY_RULE)
    available = sorted(
        k
        for k in metrics
        if isinstance(k, str) and k.startswith("validation/") and k != "validation/num_examples"
    )
    if not available:
        return None
    if config.metric == AUTO_METRIC:
        raise _validation.value_error(
            "PlateauConfig.metric", config.metric, "a validation/* metric here",
            fix="choose it first with choose_plateau_metric (model_reinit_schedule does)")
    if config.metric not in metrics:
        raise _validation.value_error(
            "PlateauConfig.metric", config.metric, f"a metric of the evaluation at step {step}",
            fix=f"available validation metrics: {available}",
        )
    raw = metrics[config.metric]
    if isinstance(raw, str | bytes):
        raise _validation.type_error(f"{config.metric} at step {step}", raw, "a scalar number")
    try:
        return float(np.asarray(raw, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise _validation.type_error(
            f"{config.metric} at step {step}", raw, "a scalar number") from None


def _entry(item: Any) -> tuple[int, Any]:
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise _validation.type_error(_ENTRIES, item, _ENTRY_RULE)
    step, metrics = item
    return _validation.integer("global_step in eval_results", step), metrics


def check_kind(eval_results: Any) -> None:
    """``TypeError`` unless ``eval_results`` is a list or tuple (not one dict)."""
    if isinstance(eval_results, Mapping | str | bytes) or not isinstance(eval_results, Sequence):
        raise _validation.type_error(
            "eval_results", eval_results, "a list of (global_step, metrics dict) pairs",
            fix="pass AlgoPerf's eval_results list, e.g. [(100, {'validation/loss': 1.2})]")


def check_eval_results(eval_results: Any, *, after: int = -1,
                       global_step: int | None = None) -> list[tuple[int, Any]]:
    """Checks AlgoPerf's ``eval_results`` and returns the entries newer than ``after``.

    Args:
      eval_results: a list (or tuple) of ``(global_step, metrics_dict)`` pairs.
      after: the newest step already read; only later entries are checked in full.
      global_step: the current training step; an entry from a later step is an error.

    Returns:
      The new entries, oldest first, with ``int`` steps.

    Raises:
      TypeError: ``eval_results`` is not a sequence of pairs (e.g. one dict), or a
        step is not an int.
      ValueError: a step is negative, lower than the one before it, or later than
        ``global_step``.
    """
    check_kind(eval_results)
    new: list[tuple[int, Any]] = []
    for item in reversed(eval_results):
        step, metrics = _entry(item)
        _validation.integer("global_step in eval_results", step, minimum=0)
        if step <= after:
            break
        new.append((step, metrics))
    new.reverse()
    previous = after
    for step, _ in new:
        if step < previous:
            raise _validation.value_error(
                "global_step in eval_results", step, f"not lower than the one before ({previous})",
                fix="eval_results must be in increasing step order")
        if global_step is not None and step > global_step:
            raise _validation.value_error(
                "global_step in eval_results", step,
                f"at most the current global_step ({global_step})",
                fix="an evaluation cannot come from a future step")
        previous = step
    return new


def latest_validation_value(
    eval_results: Sequence[tuple[int, Mapping[str, Any]]], config: PlateauConfig
) -> tuple[int, float] | None:
    """The configured validation metric of the newest evaluation.

    Reads only the ``validation/*`` key ``config.metric``; the value is returned as
    found (possibly NaN or infinite).

    Args:
      eval_results: AlgoPerf's list of ``(global_step, metrics_dict)``.
      config: the detector's configuration (for ``metric``).

    Returns:
      ``(global_step, value)`` of the last entry, or ``None`` if the list is empty
      or the last entry holds no ``validation/*`` metric at all.

    Raises:
      TypeError: ``config`` or an entry has the wrong type.
      ValueError: the last entry has validation metrics but not ``config.metric``
        (the message lists the available ones).

    Example:
      >>> results = [(1, {"validation/loss": 2.5}), (90, {"validation/loss": 1.5})]
      >>> latest_validation_value(results, PlateauConfig(metric="loss"))
      (90, 1.5)
    """
    _check_config(config)
    if not eval_results:
        return None
    step, metrics = _entry(eval_results[-1])
    value = _validation_value(config, step, metrics)
    return None if value is None else (step, value)


def feed_eval_results(
    config: PlateauConfig,
    state: PlateauState,
    eval_results: Sequence[tuple[int, Mapping[str, Any]]],
) -> PlateauState:
    """Feeds every evaluation newer than ``state.last_fed_step``, oldest first.

    Safe to call on every training step with the runner's growing list: entries
    already fed are skipped, so nothing is counted twice. The cursor lives in the
    state (``last_fed_step``), so it is checkpointed with it. Entries without any
    ``validation/*`` metric only advance the cursor.

    This is a host-side function: it reads ``state.last_fed_step`` (a device to
    host transfer), so keep the plateau state out of the jitted train step's
    outputs, or the read waits for that step to finish.

    Args:
      config: the detector's configuration.
      state: the current state.
      eval_results: AlgoPerf's list of ``(global_step, metrics_dict)``, in
        increasing step order.

    Returns:
      The updated state. A trigger among the new entries shows as an increase of
      ``num_triggers``; ``last_reason`` says why.

    Raises:
      TypeError: ``config`` or an entry has the wrong type.
      ValueError: a new entry has validation metrics but not ``config.metric``,
        or a step does not fit in int32.

    Example:
      >>> from algoperf_reinit.reinit import init_plateau_state
      >>> cfg = PlateauConfig(patience=1)
      >>> state = init_plateau_state(cfg)
      >>> results = [(1, {"validation/loss": 2.0}), (50, {"validation/loss": 2.0})]
      >>> state = feed_eval_results(cfg, state, results)
      >>> state = feed_eval_results(cfg, state, results)  # nothing new: no change
      >>> int(state.num_evals), int(state.num_triggers), int(state.last_fed_step)
      (2, 1, 50)
    """
    _check_config(config)
    if not eval_results:
        return state
    last = int(np.asarray(state.last_fed_step))
    new: list[tuple[int, Any]] = []
    for item in reversed(eval_results):
        step, metrics = _entry(item)
        if step <= last:
            break
        new.append((step, metrics))
    for step, metrics in reversed(new):
        _validation.integer("global_step in eval_results", step, maximum=_validation.INT32_MAX)
        value = _validation_value(config, step, metrics)
        if value is None:
            state = state._replace(last_fed_step=_i32(step))
            continue
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, skipped
            value32 = np.float32(value)
        state, _, _ = _update_jit(config, state, value32, np.int32(step))
    return state
