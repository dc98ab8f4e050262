"""Shape buckets: a bounded number of compiled shapes for a schedule of shapes.

Every distinct array shape is a new XLA compilation of the train step. A schedule that
changes a length (the curriculum's sequence length, random-LTD's kept length) would
compile once per distinct value: DeepSpeed's GPT-3 ``seqlen_truncate`` settings (80 ->
2048, ``difficulty_step`` 8) give 247 lengths, its random-LTD settings 121 kept
lengths. :class:`ShapeBuckets` maps each scheduled shape to one of at most
``max_buckets`` shapes (default :data:`DEFAULT_MAX_BUCKETS` = 8) chosen ahead from the
schedule's runs (``_schedule_runs``), and :class:`ShapeCounter` reports steps and
compilations per shape.

A shape is a tuple of numbers, one per scheduled quantity: ``(seq_len,)`` for the
curriculum alone, ``(seq_len, kept_len)`` when random-LTD runs beside it, so one bound
covers every pair the train step sees (``joint_runs`` zips the two schedules).

**Rounding.** ``rounding="down"`` (the default) maps a shape to the largest bucket that
is ``<=`` it in every component; ``"up"`` to the smallest ``>=`` it. Down never shows
a longer sequence (or keeps more tokens) than scheduled, so the curriculum stays at
least as easy as DeepSpeed's at every step and computes no more; the value the
schedule ends on is always a bucket of its own, so the full length is reached at the
same step as in DeepSpeed and from then on the run is exactly DeepSpeed's.

**Choice of buckets.** With at most ``max_buckets`` distinct shapes in the runs, every
shape is its own bucket (DeepSpeed's schedule exactly). Otherwise the final value is a
bucket and the other shapes (sorted, lexicographically for tuples) are cut into
contiguous groups, each represented by its componentwise minimum (down) or maximum
(up), choosing the cut that minimises the total shift ``sum over steps of |bucket -
scheduled|`` (summed over the components), by dynamic programming: ``max_buckets - 1``
groups beside the final value, or ``max_buckets`` when the final value lies beyond
every other one on the rounding side (rounding up a growing schedule: the last group
may round up to the final value). For one quantity this is the optimal set of buckets
(checked against brute force in the tests); for a chain of tuples (every component
non-decreasing over the steps) too.

**Tokens versus DeepSpeed.** DeepSpeed computes at the scheduled length; with buckets
rounded down a truncated batch has ``B * (scheduled - bucket)`` fewer tokens per step
until the final bucket. :meth:`ShapeBuckets.shift` gives the per-sample total over the
runs (negative for down); the sequence-length curriculum counts the tokens really
computed beside DeepSpeed's count. GPT-3's 247 lengths in 8 buckets: down
``80, 368, 648, ..., 1768, 2048`` computes 12.9 % fewer tokens than DeepSpeed over the
110k curriculum steps, up ``320, 568, ..., 1800, 2048`` 11.3 % more.

Example:
  >>> runs = (Run(1, 4, (64,)), Run(4, 8, (96,)), Run(8, 9, (128,)), Run(9, None, (256,)))
  >>> buckets = ShapeBuckets.from_runs(runs, max_buckets=3)
  >>> buckets.shapes
  ((64,), (96,), (256,))
  >>> buckets(128), buckets((100,))
  (96, (96,))
  >>> buckets.shift(runs)
  (-32.0,)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._schedule_runs import Run, Shape, as_shape

__all__ = [
    "DEFAULT_MAX_BUCKETS",
    "ROUNDINGS",
    "ShapeBuckets",
    "ShapeCount",
    "ShapeCounter",
    "shape_name",
]

DEFAULT_MAX_BUCKETS = 8
"""Distinct shapes per run by default (one joint bound for every scheduled length)."""
ROUNDINGS = ("down", "up")
"""How a scheduled shape is mapped to a bucket (see the module docstring)."""


def _group_costs(values: np.ndarray, counts: np.ndarray, down: bool) -> np.ndarray:
    """``cost[i, j]``: total shift of items ``i..j`` mapped to their componentwise min/max."""
    n = len(values)
    cost = np.full((n, n), np.inf)
    weighted = values.sum(axis=1) * counts
    for i in range(n):
        extreme = (np.minimum if down else np.maximum).accumulate(values[i:], axis=0)
        total = np.cumsum(counts[i:])
        spread = (extreme * total[:, None]).sum(axis=1) - np.cumsum(weighted[i:])
        cost[i, i:] = -spread if down else spread
    return cost


def _optimal_groups(values: np.ndarray, counts: np.ndarray, groups: int,
                    down: bool) -> list[tuple[int, int]]:
    """Contiguous groups ``[(i, j), ...]`` of the sorted items minimising the total shift."""
    n = len(values)
    cost = _group_costs(values, counts, down)
    best = cost[0].copy()  # best[j]: items 0..j in g groups
    cuts = [np.zeros(n, dtype=np.int64)]
    for _ in range(1, groups):
        previous = np.concatenate([[0.0], best[:-1]])  # best of items 0..i-1, g-1 groups
        previous[0] = np.inf  # every group non-empty
        total = previous[:, None] + cost  # [i, j]: new group i..j
        start = np.argmin(total, axis=0)
        best = total[start, np.arange(n)]
        cuts.append(start)
    bounds, j = [], n - 1
    for start in reversed(cuts):
        i = int(start[j])
        bounds.append((i, j))
        j = i - 1
    return bounds[::-1]


class ShapeBuckets:
    """A fixed set of shapes; maps a scheduled shape to one of them (see the module doc).

    Args:
      shapes: the buckets (numbers or tuples of numbers, all of one length).
      rounding: ``"down"`` (largest bucket ``<=`` the shape, componentwise) or
        ``"up"`` (smallest bucket ``>=`` it).

    Raises:
      TypeError, ValueError: for an empty set, mixed lengths or a bad rounding.
    """

    def __init__(self, shapes: Iterable[Any], *, rounding: str = "down") -> None:
        self._rounding = _validation.choice("rounding", rounding, ROUNDINGS)
        found = sorted({as_shape("shapes", s) for s in shapes})
        if not found:
            raise _validation.value_error("shapes", found, "a non-empty set of shapes")
        if len({len(s) for s in found}) != 1:
            raise _validation.value_error("shapes", found, "shapes of one length")
        self._shapes: tuple[Shape, ...] = tuple(found)

    @classmethod
    def from_runs(cls, runs: Sequence[Run], *, max_buckets: int = DEFAULT_MAX_BUCKETS,
                  rounding: str = "down") -> ShapeBuckets:
        """The at most ``max_buckets`` buckets that shift the schedule's runs the least.

        Args:
          runs: the schedule (e.g. :func:`monotone_runs`, :func:`joint_runs`).
          max_buckets: the bound on distinct shapes, ``>= 1`` (``>= 2`` when the runs
            hold more than one shape: the final value is a bucket of its own).
          rounding: ``"down"`` or ``"up"``.

        Returns:
          The buckets; every shape of the runs when there are at most ``max_buckets``.
        """
        max_buckets = _validation.integer("max_buckets", max_buckets, minimum=1)
        rounding = _validation.choice("rounding", rounding, ROUNDINGS)
        runs = tuple(runs)
        if not runs or any(not isinstance(r, Run) for r in runs):
            raise _validation.value_error("runs", runs, "a non-empty sequence of Run")
        distinct = {r.value for r in runs}
        if len(distinct) <= max_buckets:
            return cls(distinct, rounding=rounding)
        if max_buckets < 2:
            raise _validation.value_error(
                "max_buckets", max_buckets, f">= 2 for a schedule of {len(distinct)} shapes",
                fix="the final shape is a bucket of its own")
        final = runs[-1].value
        down = rounding == "down"
        steps: dict[Shape, int] = {}
        for run in runs:
            if run.value != final:
                steps[run.value] = steps.get(run.value, 0) + run.steps
        # A final shape beyond every other one on the rounding side ("up" and a growing
        # schedule) may also serve the last group: it joins the groups, at no cost.
        beyond = all(all((f <= v) if down else (f >= v) for f, v in zip(final, s, strict=True))
                     for s in steps)
        if beyond:
            steps[final] = 0
        items = sorted(steps)
        values = np.asarray(items, dtype=np.float64)
        counts = np.asarray([steps[s] for s in items], dtype=np.float64)
        groups = max_buckets if beyond else max_buckets - 1
        pick = min if down else max
        chosen = {tuple(pick(column) for column in zip(*items[i:j + 1], strict=True))
                  for i, j in _optimal_groups(values, counts, groups, down)}
        return cls([*chosen, final], rounding=rounding)

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """The buckets, sorted."""
        return self._shapes

    @property
    def rounding(self) -> str:
        """``"down"`` or ``"up"``."""
        return self._rounding

    @property
    def dims(self) -> int:
        """Components per shape."""
        return len(self._shapes[0])

    def __len__(self) -> int:
        return len(self._shapes)

    def __repr__(self) -> str:
        return f"ShapeBuckets({list(self._shapes)!r}, rounding={self._rounding!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ShapeBuckets) and self._shapes == other._shapes
                and self._rounding == other._rounding)

    def __hash__(self) -> int:
        return hash((self._shapes, self._rounding))

    def bucket(self, shape: Any) -> Shape:
        """The bucket of ``shape`` (a tuple, or a number for one component)."""
        value = as_shape("shape", shape)
        if len(value) != self.dims:
            raise _validation.value_error("shape", shape, f"a shape of {self.dims} numbers")
        if self._rounding == "down":
            fits = [s for s in self._shapes if all(b <= v for b, v in zip(s, value, strict=True))]
            pick, edge, rule = max, self._shapes[0], ">= the smallest bucket"
        else:
            fits = [s for s in self._shapes if all(b >= v for b, v in zip(s, value, strict=True))]
            pick, edge, rule = min, self._shapes[-1], "<= the largest bucket"
        if not fits:
            raise _validation.value_error(
                "shape", shape, f"{rule} {edge} (componentwise)",
                fix="the schedule gave a shape the buckets were not built for")
        return pick(fits, key=lambda s: (math.fsum(s), s))

    def __call__(self, shape: Any) -> Any:
        """Like :meth:`bucket`, but a number in gives a number out."""
        out = self.bucket(shape)
        return out if isinstance(shape, tuple | list) else out[0]

    def shift(self, runs: Sequence[Run]) -> tuple[float, ...]:
        """``sum over the bounded runs of steps * (bucket - value)``, per component."""
        total = [0.0] * self.dims
        for run in runs:
            for k, (b, v) in enumerate(zip(self.bucket(run.value), run.value, strict=True)):
                total[k] += run.steps * (b - v)
        return tuple(total)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for a run's summary or a checkpoint)."""
        return {"shapes": [list(s) for s in self._shapes], "rounding": self._rounding}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShapeBuckets:
        """The inverse of :meth:`to_dict`."""
        return cls([tuple(s) for s in data["shapes"]], rounding=data["rounding"])


def shape_name(shape: Any) -> str:
    """``"64"`` for ``(64,)``, ``"64x32"`` for ``(64, 32)`` (a summary's keys)."""
    return "x".join(f"{v:g}" if isinstance(v, float) else str(v)
                    for v in as_shape("shape", shape))


class ShapeCount(NamedTuple):
    """Steps run and compilations seen on one shape."""

    steps: int
    compilations: int


class ShapeCounter:
    """Steps and compilations per shape: the report of a run's bounded compilations.

    The caller records each step's shape, and feeds compilations from its train step:
    either the growth of the jitted step's cache (:meth:`observe_cache_size`, e.g.
    ``step._cache_size()``) or a count of compile events from ``jax.monitoring``
    (:meth:`record_compilations`), both attributed to the shape of that step.

    Args:
      bound: the promised bound on compilations (``None``: no bound); the summary says
        whether the run stayed within it.

    Example:
      >>> counter = ShapeCounter(bound=2)
      >>> for shape, cache in [((64,), 1), ((64,), 1), ((128,), 2)]:
      ...     counter.record_step(shape)
      ...     _ = counter.observe_cache_size(shape, cache)
      >>> counter.summary()["per_shape"]
      {'64': {'steps': 2, 'compilations': 1}, '128': {'steps': 1, 'compilations': 1}}
      >>> counter.summary()["within_bound"]
      True
    """

    def __init__(self, bound: int | None = DEFAULT_MAX_BUCKETS) -> None:
        self._bound = _validation.optional(_validation.integer, "bound", bound, minimum=1)
        self._counts: dict[Shape, ShapeCount] = {}
        self._cache_size = 0

    @property
    def bound(self) -> int | None:
        """The promised bound on compilations."""
        return self._bound

    @property
    def counts(self) -> dict[Shape, ShapeCount]:
        """Shape -> :class:`ShapeCount`, in the order the shapes first appeared (a copy)."""
        return dict(self._counts)

    def _add(self, shape: Any, steps: int, compilations: int) -> None:
        key = as_shape("shape", shape)
        old = self._counts.get(key, ShapeCount(0, 0))
        self._counts[key] = ShapeCount(old.steps + steps, old.compilations + compilations)

    def record_step(self, shape: Any) -> None:
        """One step ran on ``shape``."""
        self._add(shape, 1, 0)

    def record_compilations(self, shape: Any, count: int = 1) -> None:
        """``count`` compilations happened for a step on ``shape``."""
        self._add(shape, 0, _validation.integer("count", count, minimum=0))

    def observe_cache_size(self, shape: Any, cache_size: int) -> int:
        """Attribute the growth of a jitted function's cache since the last call to ``shape``.

        Returns:
          The number of new compilations (0 if the cache did not grow).
        """
        size = _validation.integer("cache_size", cache_size, minimum=0)
        new = max(size - self._cache_size, 0)
        self._cache_size = size
        self.record_compilations(shape, new)
        return new

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable totals and per-shape counts (for the run's summary)."""
        compilations = sum(c.compilations for c in self._counts.values())
        return {
            "bound": self._bound,
            "shapes": sum(1 for c in self._counts.values() if c.steps),
            "steps": sum(c.steps for c in self._counts.values()),
            "compilations": compilations,
            "within_bound": self._bound is None or compilations <= self._bound,
            "per_shape": {shape_name(s): c._asdict() for s, c in self._counts.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """The counts as JSON-serialisable data."""
        return {"bound": self._bound, "cache_size": self._cache_size,
                "counts": [[list(s), c.steps, c.compilations] for s, c in self._counts.items()]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (the bound stays this counter's)."""
        counts = {}
        for shape, steps, compilations in state_dict["counts"]:
            counts[as_shape("state_dict.counts", shape)] = ShapeCount(
                _validation.integer("state_dict.counts steps", steps, minimum=0),
                _validation.integer("state_dict.counts compilations", compilations,
                                    minimum=0))
        self._cache_size = _validation.integer("state_dict.cache_size",
                                               state_dict["cache_size"], minimum=0)
        self._counts = counts
