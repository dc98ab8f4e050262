"""AlgoPerf hyperparameters in any of the forms they arrive in, read one way.

The harness passes a namedtuple built from the search space (external tuning) or
``None`` (self-tuning); tests and notebooks pass dicts or dataclasses. Every
reader of hyperparameters in the library goes through :func:`as_mapping`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation

__all__ = ["as_mapping", "hyperparameter"]

_FORMS = "a namedtuple (AlgoPerf's), a mapping, a dataclass, a SimpleNamespace or None"


def as_mapping(hyperparameters: Any) -> dict[str, Any]:
    """The hyperparameters as a new ``dict`` of name to value.

    Args:
      hyperparameters: AlgoPerf's namedtuple, a mapping with string keys, a
        dataclass instance, a ``types.SimpleNamespace``, or ``None`` (no
        hyperparameters: an empty dict).

    Returns:
      A dict (a copy: changing it changes nothing else).

    Raises:
      TypeError: for any other kind of object, or a non-string name.

    Example:
      >>> import collections
      >>> Hp = collections.namedtuple("Hyperparameters", ["learning_rate"])
      >>> as_mapping(Hp(0.01))
      {'learning_rate': 0.01}
    """
    if hyperparameters is None:
        values: dict[Any, Any] = {}
    elif hasattr(hyperparameters, "_asdict"):
        values = dict(hyperparameters._asdict())
    elif isinstance(hyperparameters, Mapping):
        values = dict(hyperparameters)
    elif dataclasses.is_dataclass(hyperparameters) and not isinstance(hyperparameters, type):
        values = {f.name: getattr(hyperparameters, f.name)
                  for f in dataclasses.fields(hyperparameters)}
    elif isinstance(hyperparameters, types.SimpleNamespace):
        values = dict(vars(hyperparameters))
    else:
        raise _validation.type_error("hyperparameters", hyperparameters, _FORMS)
    for name in values:
        if not isinstance(name, str):
            raise _validation.type_error("hyperparameter name", name, "a str")
    return values


def hyperparameter(hyperparameters: Any, name: str) -> Any:
    """Reads one hyperparameter.

    Args:
      hyperparameters: any form :func:`as_mapping` accepts.
      name: the hyperparameter.

    Returns:
      Its value.

    Raises:
      ValueError: if it is missing (the message names it and lists those given).
      TypeError: for hyperparameters of an unsupported kind.

    Example:
      >>> hyperparameter({"warmup_factor": 0.05}, "warmup_factor")
      0.05
    """
    values = as_mapping(hyperparameters)
    if name not in values:
        raise ValueError(
            f"hyperparameters must provide {name!r}, got {sorted(values)}; add it to the "
            "search space (or the dict)"
        )
    return values[name]
