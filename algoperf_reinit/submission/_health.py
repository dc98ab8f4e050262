"""Divergence: the training state's non-finite flag, read at the eval and log cadence.

The jitted train step ORs ``~isfinite(loss) | ~isfinite(grad_norm)`` into a bool
flag that lives in the optimizer state (:class:`Health`), on the device: no host
sync per step (AlgoPerf counts that time). The host reads the flag only

* when an evaluation has just arrived (``eval_results[-1][0] == global_step``) or at
  the log cadence (``global_step % log_every == 0``), and
* when a new cycle begins, so that a reset never mixes non-finite parameters
  (``model_reinit_schedule`` then records ``reset_skipped``).

The first time the flag is seen set, a ``RuntimeWarning`` is issued once and a
``non_finite`` event is written; then, by default (``on_non_finite="stop"``), the
trial ends with AlgoPerf's ``TrainingCompleteError`` (under the real harness this
also saves the rest of the tuning budget); ``on_non_finite="continue"`` keeps going.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["NON_FINITE_ACTIONS", "Health", "check_due", "init_health", "report_non_finite"]

NON_FINITE_ACTIONS = ("stop", "continue")


class Health(NamedTuple):
    """Part of element 0 of the optimizer state (checkpointed with it)."""

    non_finite: jax.Array  # shape=(), dtype=bool; on the device, sticky, set by the step
    reported_at: np.ndarray  # shape=(), dtype=int32; host; step first reported, -1 if never


def init_health(sharding: Any) -> Health:
    """No divergence seen; the flag placed with ``sharding`` (replicated)."""
    return Health(non_finite=jax.device_put(np.bool_(False), sharding),
                  reported_at=np.asarray(-1, np.int32))


def check_due(global_step: int, eval_results: Sequence[Any], log_every: int) -> bool:
    """Whether this step reads the flag: an evaluation just arrived, or a log step."""
    if global_step % log_every == 0:
        return True
    if not eval_results:
        return False
    last = eval_results[-1]
    return isinstance(last, tuple | list) and len(last) == 2 and last[0] == global_step


def report_non_finite(health: Health, global_step: int, *, name: str, action: str,
                      hparams: Any) -> tuple[Health, str | None]:
    """Reads the flag; warns the first time it is set.

    Args:
      health: the run's :class:`Health`.
      global_step: the current step.
      name: the submission's name (for the message).
      action: ``"stop"`` or ``"continue"``.
      hparams: the resolved hyperparameters (their learning rate is named).

    Returns:
      ``(health, message)``: ``message`` is the warning text when this call found the
      divergence first, else ``None``; ``health.reported_at`` records the step.
    """
    if not bool(health.non_finite):  # the one host sync, at the eval/log cadence
        return health, None
    if int(health.reported_at) >= 0:
        return health, None
    then = ("ending the trial (TrainingCompleteError); SubmissionConfig(on_non_finite="
            "'continue') keeps going" if action == "stop" else
            "going on (on_non_finite='continue'); resets are skipped while parameters are "
            "not finite")
    message = (f"{name}: the training loss or gradient norm is not finite by step "
               f"{global_step} (learning_rate={getattr(hparams, 'learning_rate', '?')}): {then}")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return health._replace(reported_at=np.asarray(global_step, np.int32)), message
