"""Hyperparameter points from an AlgoPerf ``tuning_search_space.json``.

Two forms are accepted, as by AlgoPerf's ``submission_runner.py``
(``ALGOPERF_API.md`` §1.7):

* a **list** of points (``[{"learning_rate": 1e-3, ...}, ...]``): used in order,
  truncated to ``num_tuning_trials``;
* a **dict** of ranges: ``{name: {"min": a, "max": b, "scaling": "linear" | "log"}}``
  or ``{name: {"feasible_points": [...]}}``: ``num_tuning_trials`` quasi-random
  points from an unscrambled Halton sequence (``scipy.stats.qmc.Halton``).
  Dimension ``i`` is the ``i``-th name in sorted order (reordering the file does
  not change the points). The sequence's first point, the origin (every range at
  its minimum, every feasible list at its first entry), is skipped.

Each point becomes ``collections.namedtuple('Hyperparameters', names)`` with the
names in file order, which is what submissions receive.
"""

from __future__ import annotations

import collections
import json
import math
import pathlib
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation as v

__all__ = ["hyperparameters_from_dict", "load_search_space", "search_space_points"]

_SCALINGS = ("linear", "log")
_RANGE_KEYS = {"min", "max", "scaling"}
_FORM_HELP = (
    'a search space is a JSON list of points ([{"learning_rate": 1e-3}, ...]) or a dict of '
    'ranges ({"learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"}, '
    '"beta2": {"feasible_points": [0.999]}})'
)


def hyperparameters_from_dict(point: Mapping[str, Any], *, source: str = "<point>") -> Any:
    """Builds AlgoPerf's ``Hyperparameters`` namedtuple from a mapping (keys in order).

    Args:
      point: name → value.
      source: where the point came from, for error messages.

    Returns:
      ``collections.namedtuple('Hyperparameters', list(point))(**point)``.

    Raises:
      ValueError: for an empty point or a name that is not a Python identifier.
    """
    if not isinstance(point, Mapping) or not point:
        raise ValueError(f"{source}: a hyperparameter point must be a non-empty JSON object, "
                         f"got {point!r}")
    bad = [k for k in point if not (isinstance(k, str) and k.isidentifier()) or k.startswith("_")]
    if bad:
        raise ValueError(f"{source}: hyperparameter names must be Python identifiers not "
                         f"starting with '_' (they become namedtuple fields), got {bad}")
    return collections.namedtuple("Hyperparameters", list(point))(**point)


def _check_range(name: str, spec: Any, source: str) -> None:
    """Validates one entry of the dict form."""
    where = f"{source}: hyperparameter {name!r}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be an object with min/max/scaling or feasible_points, "
                         f"got {spec!r}")
    if "feasible_points" in spec:
        extra = sorted(set(spec) - {"feasible_points"})
        if extra:
            raise ValueError(f"{where}: feasible_points cannot be combined with {extra}")
        points = spec["feasible_points"]
        if not isinstance(points, list) or not points:
            raise ValueError(f"{where}: feasible_points must be a non-empty list, got {points!r}")
        return
    unknown = sorted(set(spec) - _RANGE_KEYS)
    missing = sorted(_RANGE_KEYS - set(spec))
    if unknown or missing:
        raise ValueError(f"{where}: a range needs exactly the keys min, max, scaling "
                         f"(missing {missing}, unknown {unknown})")
    lo = v.real(f"{where}: min", spec["min"])
    hi = v.real(f"{where}: max", spec["max"])
    scaling = v.choice(f"{where}: scaling", spec["scaling"], _SCALINGS)
    if lo > hi:
        raise ValueError(f"{where}: min must be <= max, got min={spec['min']!r} > "
                         f"max={spec['max']!r}")
    if scaling == "log":
        v.positive(f"{where}: min (log scaling)", spec["min"])


def _value_at(spec: Mapping[str, Any], u: float) -> Any:
    """The value of one dimension at the quasi-random coordinate ``u`` in [0, 1)."""
    if "feasible_points" in spec:
        points = spec["feasible_points"]
        return points[min(int(u * len(points)), len(points) - 1)]
    lo, hi = float(spec["min"]), float(spec["max"])
    if spec["scaling"] == "log":
        return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def search_space_points(space: Any, num_trials: int, *, source: str = "<search space>") -> list:
    """The hyperparameter points of a parsed search space.

    Args:
      space: the parsed JSON (list or dict form, see the module docstring).
      num_trials: number of tuning trials (>= 1).
      source: the file name, for error messages.

    Returns:
      A list of ``Hyperparameters`` namedtuples: ``num_trials`` of them for the dict
      form, at most ``num_trials`` for the list form.

    Raises:
      ValueError: for a malformed space (the message names the source, the key, the
        offending value and the rule).
      TypeError: for a ``min``/``max`` that is not a number, a ``scaling`` that is
        not a string, or a ``num_trials`` that is not an int.
    """
    v.integer("num_tuning_trials", num_trials, minimum=1)
    if isinstance(space, list):
        if not space:
            raise ValueError(f"{source}: the list of points is empty; {_FORM_HELP}")
        return [hyperparameters_from_dict(point, source=f"{source}[{i}]")
                for i, point in enumerate(space[:num_trials])]
    if not isinstance(space, Mapping):
        raise ValueError(f"{source}: got a JSON {type(space).__name__}; {_FORM_HELP}")
    if not space:
        raise ValueError(f"{source}: the search space is empty; {_FORM_HELP}")
    for name, spec in space.items():
        _check_range(name, spec, source)
    hyperparameters_from_dict(dict.fromkeys(space), source=source)  # validates the names
    from scipy.stats import qmc  # local import: scipy is slow to import

    names = sorted(space)
    sequence = qmc.Halton(d=len(names), scramble=False).random(num_trials + 1)[1:]
    points = []
    for row in sequence:
        coords = dict(zip(names, row.tolist(), strict=True))
        points.append(hyperparameters_from_dict(
            {name: _value_at(space[name], coords[name]) for name in space}, source=source))
    return points


def load_search_space(path: str | pathlib.Path, num_trials: int) -> list:
    """Reads a ``tuning_search_space.json`` and returns its points.

    Args:
      path: the JSON file.
      num_trials: number of tuning trials.

    Returns:
      The points (see :func:`search_space_points`).

    Raises:
      ValueError: if the file is missing, is not valid JSON, or is malformed.
      TypeError: for a value of the wrong kind (see :func:`search_space_points`).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"tuning search space {str(path)!r} not found (pass "
                         "--tuning_search_space=path/to/tuning_search_space.json)")
    try:
        space = json.loads(path.read_text(), parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
                         ) from None
    except _NonFiniteError as e:
        raise ValueError(f"{path}: {e}") from None
    return search_space_points(space, num_trials, source=str(path))


class _NonFiniteError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteError(f"non-finite number {name} is not valid JSON")

