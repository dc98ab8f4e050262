"""The bundled workloads' own argument checks (they never import ``algoperf_reinit``).

The same message format and exception rule as the library's validation module::

    <field> must be <rule>, got <value>[ of type <type>][; <fix>]

``TypeError`` when the value is not of an accepted kind (a bool or float where an
int is needed, a non-number where a number is needed, a non-string where a name
is needed); ``ValueError`` when the kind is right but the value is not (out of
range, not one of the choices).

Example:
  >>> integer("seq_len", 0, minimum=1)
  Traceback (most recent call last):
  ...
  ValueError: seq_len must be an int >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = ["choice", "in_range", "integer", "message", "type_error", "value_error"]


def message(field: str, value: Any, rule: str, *, fix: str | None = None,
            show_type: bool = False) -> str:
    """``<field> must be <rule>, got <value>[ of type <type>][; <fix>]``."""
    text = f"{field} must be {rule}, got {value!r}"
    if show_type:
        text += f" of type {type(value).__name__}"
    return f"{text}; {fix}" if fix else text


def value_error(field: str, value: Any, rule: str, *, fix: str | None = None) -> ValueError:
    """A ``ValueError`` with :func:`message`."""
    return ValueError(message(field, value, rule, fix=fix))


def type_error(field: str, value: Any, rule: str, *, fix: str | None = None) -> TypeError:
    """A ``TypeError`` with :func:`message`, naming the value's type."""
    return TypeError(message(field, value, rule, fix=fix, show_type=True))


def integer(field: str, value: Any, *, minimum: int | None = None) -> int:
    """A Python or NumPy int (not a bool) ``>= minimum``, as a Python int.

    Raises:
      TypeError: for anything but an int.
      ValueError: for an int below ``minimum``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise type_error(field, value, "an int")
    if minimum is not None and value < minimum:
        raise value_error(field, value, f"an int >= {minimum}")
    return int(value)


def in_range(field: str, value: Any, low: float, high: float, *,
             high_open: bool = False) -> float:
    """A finite real number in ``[low, high]`` (``[low, high)`` if ``high_open``).

    Raises:
      TypeError: for anything but a real number (bools included).
      ValueError: for NaN, infinity or a value outside the interval.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(
            value, int | float | np.integer | np.floating):
        raise type_error(field, value, "a real number")
    number = float(value)
    if not (math.isfinite(number) and low <= number and (
            number < high if high_open else number <= high)):
        raise value_error(field, value, f"in [{low:g}, {high:g}{')' if high_open else ']'}")
    return number


def choice(field: str, value: Any, choices: Collection[str], *, fix: str | None = None) -> str:
    """``value`` if it is one of the names ``choices`` (``fix``: advice for the message).

    Raises:
      TypeError: for a value that is not a ``str``.
      ValueError: for a name not among ``choices`` (all are listed).
    """
    if isinstance(value, str) and value in choices:
        return value
    error = value_error if isinstance(value, str) else type_error
    raise error(field, value, "one of " + ", ".join(map(repr, choices)), fix=fix)
