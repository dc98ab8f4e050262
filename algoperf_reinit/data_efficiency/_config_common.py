"""What every block of the ``data_efficiency`` configuration shares.

* :class:`FrozenMapping`: a read-only, ordered, hashable, picklable mapping; it holds
  ``curriculum_metrics`` (config order matters: cluster file names follow it) and the
  unknown keys a block keeps (``extra``).
* :class:`Block`: one dict of the user's JSON being read, with its full key path, so
  every message names ``data_efficiency.data_sampling....difficulty_step``. It never
  writes into the user's dict.
* :func:`set_field`: the one way ``__post_init__`` stores a normalised value into a
  frozen dataclass.

Unknown keys: DeepSpeed copies some blocks through verbatim (``data_sampling``,
``curriculum_learning`` and its metrics, ``dynamic_batching``, ``random_ltd``) and
rebuilds others from known keys only (``data_efficiency``, ``data_routing``). We keep
them where DeepSpeed keeps them, drop them where it drops them, and warn for each,
naming the key path and the closest valid key: a typo must not pass silently.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from algoperf_reinit import _validation

__all__ = [
    "CURRICULUM_LEARNING_PATH",
    "CURRICULUM_METRIC_PATH",
    "DATA_EFFICIENCY_PATH",
    "DATA_ROUTING_PATH",
    "DATA_SAMPLING_PATH",
    "MISSING",
    "RANDOM_LTD_PATH",
    "Block",
    "FrozenMapping",
    "frozen_extra",
    "int_tuple",
    "optional_int",
    "path_or_none",
    "set_field",
    "sub_config",
]

DATA_EFFICIENCY_PATH = "data_efficiency"
DATA_SAMPLING_PATH = f"{DATA_EFFICIENCY_PATH}.data_sampling"
CURRICULUM_LEARNING_PATH = f"{DATA_SAMPLING_PATH}.curriculum_learning"
CURRICULUM_METRIC_PATH = f"{CURRICULUM_LEARNING_PATH}.curriculum_metrics.<metric>"
"""The key path of a metric whose name is not known (a dict given to the scheduler)."""
DATA_ROUTING_PATH = f"{DATA_EFFICIENCY_PATH}.data_routing"
RANDOM_LTD_PATH = f"{DATA_ROUTING_PATH}.random_ltd"

_V = TypeVar("_V")


class _Missing:
    """The value of a key that is not there (``repr``: ``<missing>``)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()
"""Shown as the value of a required key that was not given."""


class FrozenMapping(Mapping[str, _V], Generic[_V]):
    """A read-only ordered mapping: hashable (if its values are) and picklable.

    Two ``FrozenMapping`` are equal when they hold the same items in the same order;
    compared with another mapping, ordinary ``dict`` equality applies.

    Example:
      >>> m = FrozenMapping({"seqlen": 1, "vocab": 2})
      >>> list(m), m["vocab"], m == {"vocab": 2, "seqlen": 1}
      (['seqlen', 'vocab'], 2, True)
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Mapping[str, _V] | Iterable[tuple[str, _V]] = ()) -> None:
        pairs = tuple(items.items() if isinstance(items, Mapping) else items)
        self._items = pairs
        self._index = dict(pairs)

    def __getitem__(self, key: str) -> _V:
        return self._index[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMapping):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._index == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._index!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMapping, (self._items,))


def set_field(obj: object, name: str, value: Any) -> None:
    """Store a normalised value into a frozen dataclass (from ``__post_init__``)."""
    object.__setattr__(obj, name, value)


def optional_int(field: str, value: Any, minimum: int | None = 1) -> int | None:
    """``None``, or an int ``>= minimum`` (see ``_validation.integer``)."""
    return _validation.optional(_validation.integer, field, value, minimum=minimum)


def sub_config(path: str, value: Any, cls: type) -> Any:
    """A sub-block given as a dict (parsed by ``cls.from_dict``) or as a ``cls`` (kept)."""
    if isinstance(value, Mapping):
        return cls.from_dict(Block(path, value))
    return _validation.instance(path, value, cls)


def frozen_extra(field: str, value: Any) -> FrozenMapping[Any]:
    """``extra`` (the unknown keys a block keeps) as a :class:`FrozenMapping`."""
    if isinstance(value, FrozenMapping):
        return value
    if not isinstance(value, Mapping):
        raise _validation.type_error(field, value, "a mapping of unknown keys to values")
    return FrozenMapping((k, copy.deepcopy(v)) for k, v in value.items())


def int_tuple(field: str, value: Any, *, minimum: int | None = None,
              increasing: bool = False) -> tuple[int, ...]:
    """A non-empty list of ints as a tuple; elements are named ``field[i]``.

    Example:
      >>> int_tuple("max_step", [5, 10], minimum=0, increasing=True)
      (5, 10)
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _validation.type_error(field, value, "a list of ints")
    items = tuple(_validation.integer(f"{field}[{i}]", item, minimum=minimum)
                  for i, item in enumerate(value))
    if not items:
        raise _validation.value_error(field, list(value), "a non-empty list")
    if increasing and any(b <= a for a, b in itertools.pairwise(items)):
        raise _validation.value_error(field, list(value), "strictly increasing")
    return items


def path_or_none(field: str, value: Any) -> str | None:
    """``None``, or a path (``str`` or ``os.PathLike``) as a ``str``."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _validation.type_error(field, value, "a path (a string)")
    if not value:
        raise _validation.value_error(field, value, "a non-empty path")
    return value


class Block:
    """One dict of the configuration, read (never written) under its full key path.

    Args:
      path: the key path of the block, e.g. ``data_efficiency.data_sampling``.
      data: the user's value; a ``TypeError`` unless it is a mapping.

    Example:
      >>> block = Block("data_efficiency", {"seed": 7})
      >>> block.key("seed"), block.get("seed"), block.get("enabled", False)
      ('data_efficiency.seed', 7, False)
    """

    def __init__(self, path: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise _validation.type_error(path, data, "a dict (a JSON object)")
        self.path = path
        self.data = data

    def key(self, name: str) -> str:
        """The full key path of ``name`` in this block."""
        return f"{self.path}.{name}"

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when it is absent."""
        return self.data.get(name, default)

    def require(self, name: str, when: str) -> Any:
        """The value of ``name``; a ``ValueError`` naming its path when it is absent."""
        if name not in self.data:
            raise _validation.value_error(self.key(name), MISSING, f"given {when}")
        return self.data[name]

    def sub(self, name: str) -> Block | None:
        """The sub-block ``name`` (``None`` when absent or JSON ``null``)."""
        value = self.data.get(name)
        return None if value is None else Block(self.key(name), value)

    def extras(self, known: Collection[str], *, kept: bool) -> FrozenMapping[Any]:
        """Warn for every key not in ``known``; return deep copies of them if ``kept``.

        Args:
          known: the valid keys of this block.
          kept: DeepSpeed copies this block through (so we keep the unknown keys, for
            :meth:`to_dict`); otherwise it ignores them and so do we.
        """
        unknown = [k for k in self.data if k not in known]
        for name in unknown:
            near = _validation.closest(name, known)
            hint = f"did you mean {near!r}?" if near is not None else "no valid key is close"
            fate = ("kept, as DeepSpeed keeps it, but nothing reads it" if kept
                    else "ignored, as DeepSpeed ignores it")
            _validation.warn(f"{self.key(name)} is not a known key ({hint}); {fate}")
        if not kept:
            return FrozenMapping()
        return FrozenMapping((k, copy.deepcopy(self.data[k])) for k in unknown)
