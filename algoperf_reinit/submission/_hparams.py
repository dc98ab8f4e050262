"""Hyperparameters of our submissions, with documented self-tuning defaults.

AlgoPerf passes a namedtuple (external tuning) or ``None`` (self-tuning). Every
name here is optional in a search space: a missing name takes its default, so one
search space can tune a subset.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class HParams:
    """Resolved hyperparameters (defaults = the self-tuning values).

    The defaults are AlgoPerf's NAdamW baseline point (learning rate, betas, weight
    decay, warmup fraction) except where noted.

    Attributes:
      learning_rate: base peak learning rate.
      one_minus_beta1: ``1 - b1`` of NAdamW.
      beta2: ``b2`` of NAdamW.
      weight_decay: decoupled weight decay (multiplied by the learning rate).
      warmup_factor: warmup as a fraction of each cycle.
      label_smoothing: passed to ``workload.loss_fn``.
      dropout_rate: passed to ``workload.model_fn``; ``None`` keeps the workload's
        default.
      grad_clip: global-norm clipping threshold; ``None`` disables clipping.
      budget_fraction: fraction of ``workload.step_hint`` the schedule spans.
    """

    learning_rate: float = 1.7e-3
    one_minus_beta1: float = 0.1
    beta2: float = 0.999
    weight_decay: float = 0.08
    warmup_factor: float = 0.05
    label_smoothing: float = 0.0
    dropout_rate: float | None = None
    grad_clip: float | None = None
    budget_fraction: float = 1.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name in ("dropout_rate", "grad_clip"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"hyperparameter {field.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"hyperparameter {field.name} must be a finite number >= 0, got {value!r}"
                )
            object.__setattr__(self, field.name, float(value))
        for name in ("one_minus_beta1", "beta2", "warmup_factor", "label_smoothing"):
            if getattr(self, name) >= 1:
                raise ValueError(f"hyperparameter {name} must be < 1, got {getattr(self, name)!r}")
        if self.learning_rate <= 0 or not 0 < self.budget_fraction <= 4:
            raise ValueError(
                "hyperparameters learning_rate must be > 0 and budget_fraction in (0, 4], got "
                f"{self.learning_rate!r} and {self.budget_fraction!r}"
            )


def resolve_hparams(hyperparameters: Any, defaults: HParams | None = None) -> HParams:
    """Reads AlgoPerf hyperparameters (namedtuple, mapping or None) over ``defaults``.

    Args:
      hyperparameters: AlgoPerf's namedtuple, a mapping, or ``None`` (self-tuning).
      defaults: values for names the search space does not set.

    Returns:
      The resolved, validated hyperparameters. Unknown names in the search space
      are ignored here (a submission may read extra ones itself).
    """
    defaults = defaults or HParams()
    if hyperparameters is None:
        return defaults
    if hasattr(hyperparameters, "_asdict"):
        given = hyperparameters._asdict()
    elif isinstance(hyperparameters, dict):
        given = dict(hyperparameters)
    else:
        raise TypeError(
            "hyperparameters must be a namedtuple, a dict or None, got "
            f"{type(hyperparameters).__name__}"
        )
    known = {f.name for f in dataclasses.fields(HParams)}
    return dataclasses.replace(defaults, **{k: v for k, v in given.items() if k in known})
