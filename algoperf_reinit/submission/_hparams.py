"""Hyperparameters of our submissions, with documented self-tuning defaults.

AlgoPerf passes a namedtuple (external tuning) or ``None`` (self-tuning). Every
name here is optional in a search space: a missing name takes its default, so one
search space can tune a subset.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, NamedTuple

from algoperf_reinit import _validation
from algoperf_reinit._hyperparameters import as_mapping

__all__ = ["HParams", "HParamsReport", "report_hparams", "resolve_hparams"]
RESOLVED_FILE = "hparams_resolved.json"
"""Written in the run directory at the start of a trial: resolved values, where each
came from, and names the submission does not read."""

_OPTIONAL = ("dropout_rate", "grad_clip")
# in_range bounds per hyperparameter; any other is a finite number >= 0.
_RANGES: dict[str, dict[str, Any]] = {
    "learning_rate": dict(low=0.0, low_open=True),
    "one_minus_beta1": dict(low=0.0, high=1.0, high_open=True),
    "beta2": dict(low=0.0, high=1.0, high_open=True),
    "warmup_factor": dict(low=0.0, high=1.0, high_open=True),
    "label_smoothing": dict(low=0.0, high=1.0, high_open=True),
    "budget_fraction": dict(low=0.0, high=4.0, low_open=True),
}


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
            if value is None and field.name in _OPTIONAL:
                continue
            bounds = _RANGES.get(field.name, dict(low=0.0))
            number = _validation.in_range(f"hyperparameter {field.name}", value, **bounds)
            object.__setattr__(self, field.name, number)


def resolve_hparams(hyperparameters: Any, defaults: HParams | None = None) -> HParams:
    """Reads AlgoPerf hyperparameters over ``defaults``.

    Args:
      hyperparameters: any form :func:`algoperf_reinit._hyperparameters.as_mapping`
        reads: AlgoPerf's namedtuple, a mapping, a dataclass, a ``SimpleNamespace``,
        or ``None`` (self-tuning: the defaults).
      defaults: values for names the search space does not set.

    Returns:
      The resolved, validated hyperparameters. Unknown names in the search space
      are ignored here (a submission may read extra ones itself).

    Raises:
      TypeError: for hyperparameters of another kind, or a value of the wrong kind.
      ValueError: for a value out of its range (the message names it and the rule).

    Example:
      >>> resolve_hparams({"learning_rate": 3e-3, "extra": 1}).learning_rate
      0.003
      >>> resolve_hparams(None).learning_rate  # the self-tuning default
      0.0017
    """
    defaults = defaults or HParams()
    known = {f.name for f in dataclasses.fields(HParams)}
    given = {k: v for k, v in as_mapping(hyperparameters).items() if k in known}
    return dataclasses.replace(defaults, **given) if given else defaults


class HParamsReport(NamedTuple):
    """Which hyperparameters a trial took from the search space and which fell back.

    Attributes:
      hparams: the resolved values.
      given: names the search space set (and this submission reads), with values.
      defaulted: names that took their default, with the default.
      unknown: names the submission does not read, each with the closest name it
        reads (by ``difflib`` similarity).
    """

    hparams: HParams
    given: dict[str, Any]
    defaulted: dict[str, Any]
    unknown: dict[str, str]

    def warnings(self, name: str) -> list[str]:
        """One message per unknown name (``did you mean``)."""
        known = sorted(self.given) + sorted(self.defaulted)
        out = []
        for key, close in self.unknown.items():
            out.append(f"hyperparameter {key!r} is not read by {name}: the closest name it "
                       f"reads is {close!r} (it reads: {', '.join(sorted(known))}); the "
                       "value is ignored")
        return out

    def summary(self, name: str) -> str:
        """The one line said at the start of a trial."""
        defaulted = ", ".join(f"{k}={v!r}" for k, v in self.defaulted.items()) or "none"
        return f"{name}: hyperparameters that fell back to defaults: {defaulted}"

    def as_json(self, name: str) -> dict[str, Any]:
        """The content of ``hparams_resolved.json``."""
        return {"submission": name, "resolved": dataclasses.asdict(self.hparams),
                "given": self.given, "defaulted": self.defaulted, "unknown": self.unknown}


def report_hparams(hyperparameters: Any, defaults: HParams | None = None) -> HParamsReport:
    """Resolves like :func:`resolve_hparams` and says where each value came from.

    Args:
      hyperparameters: as for :func:`resolve_hparams`.
      defaults: values for names the search space does not set.

    Returns:
      The :class:`HParamsReport`.

    Raises:
      TypeError, ValueError: as :func:`resolve_hparams`.

    Example:
      >>> report = report_hparams({"learning_rate": 3e-3, "lerning_rate": 1.0})
      >>> report.unknown, "beta2" in report.defaulted
      ({'lerning_rate': 'learning_rate'}, True)
    """
    hparams = resolve_hparams(hyperparameters, defaults)
    given = as_mapping(hyperparameters)
    names = [f.name for f in dataclasses.fields(HParams)]
    unknown = {}
    for key in given:
        if key not in names:
            unknown[str(key)] = difflib.get_close_matches(str(key), names, n=1, cutoff=0.0)[0]
    return HParamsReport(
        hparams=hparams,
        given={k: getattr(hparams, k) for k in names if k in given},
        defaulted={k: getattr(hparams, k) for k in names if k not in given},
        unknown=unknown,
    )
