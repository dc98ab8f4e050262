"""Validation of user input: one message format and one rule for the exception type.

Every builder of the library checks what it is given when it is built, with the
helpers here, so that a mistake reads the same wherever it is made::

    <field> must be <rule>, got <value>[ of type <type>][; <fix>]

``field`` names what was wrong as the user wrote it: an argument (``learning_rate``),
a dataclass field (``Decay.rate``), an element (``cycle_fractions[2]``) or a key path
of a configuration (``data_efficiency.data_sampling.num_epochs``).

Which exception a mistake gets:

* ``TypeError`` when the value is not of an accepted *kind*: a string or ``None``
  where a number is needed, a ``bool`` where a number is needed (``True`` is not
  1 here), a float where a whole number is needed (unless the check accepts
  whole floats, see :func:`integer`), a non-string where a name is needed.
* ``ValueError`` when the kind is right but the value is not: NaN, infinity, out
  of range, not one of the choices, or inconsistent with another field.

The module is pure Python and NumPy (no JAX): host-side configuration code imports
it without pulling in a device runtime.

Example:
  >>> positive("learning_rate", 3e-3)
  0.003
  >>> positive("learning_rate", -1)
  Traceback (most recent call last):
  ...
  ValueError: learning_rate must be > 0, got -1
  >>> real("Decay.rate", "0.5")
  Traceback (most recent call last):
  ...
  TypeError: Decay.rate must be a real number, got '0.5' of type str
"""

from __future__ import annotations

import difflib
import math
import sys
import warnings
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "INT32_MAX",
    "boolean",
    "choice",
    "closest",
    "in_range",
    "instance",
    "integer",
    "message",
    "non_negative",
    "optional",
    "positive",
    "real",
    "type_error",
    "unit_interval",
    "value_error",
    "warn",
]

INT32_MAX = int(np.iinfo(np.int32).max)
"""The largest int32: step counts and evaluation counters saturate here."""

_T = TypeVar("_T")


def message(
    field: str, value: Any, rule: str, *, fix: str | None = None, show_type: bool = False
) -> str:
    """The one message format: ``<field> must be <rule>, got <value>[; <fix>]``.

    Args:
      field: what was wrong, as the user wrote it.
      value: the offending value (rendered with ``repr``).
      rule: what it must be, phrased to follow "must be".
      fix: optional advice, appended after a semicolon.
      show_type: also name the value's type (for type mistakes).

    Returns:
      The message.
    """
    text = f"{field} must be {rule}, got {value!r}"
    if show_type:
        text += f" of type {type(value).__name__}"
    if fix:
        text += f"; {fix}"
    return text


def value_error(field: str, value: Any, rule: str, *, fix: str | None = None) -> ValueError:
    """A ``ValueError`` with :func:`message` (raise it: ``raise value_error(...)``)."""
    return ValueError(message(field, value, rule, fix=fix))


def type_error(field: str, value: Any, rule: str, *, fix: str | None = None) -> TypeError:
    """A ``TypeError`` with :func:`message`, naming the value's type."""
    return TypeError(message(field, value, rule, fix=fix, show_type=True))


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def real(field: str, value: Any, *, finite: bool = True, fix: str | None = None) -> float:
    """A real number as a Python float.

    Args:
      field: name for the message.
      value: a Python or NumPy int or float (not a bool).
      finite: also reject ``+-inf`` (NaN is always rejected).
      fix: advice appended to the message.

    Returns:
      ``float(value)``.

    Raises:
      TypeError: for anything but a real number.
      ValueError: for NaN, or infinity when ``finite``.
    """
    if not _is_real(value):
        raise type_error(field, value, "a real number", fix=fix)
    number = float(value)
    if math.isnan(number):
        raise value_error(field, value, "a number, not NaN", fix=fix)
    if finite and not math.isfinite(number):
        raise value_error(field, value, "finite", fix=fix)
    return number


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "a real number"


def in_range(
    field: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    fix: str | None = None,
) -> float:
    """A real number within ``low``/``high`` (either may be ``None``: unbounded).

    Args:
      field: name for the message.
      value: the number.
      low: lower bound, or ``None``.
      high: upper bound, or ``None``.
      low_open: exclude ``low`` itself.
      high_open: exclude ``high`` itself.
      finite: also reject infinity.
      fix: advice appended to the message.

    Returns:
      ``float(value)``.

    Raises:
      TypeError: for anything but a real number.
      ValueError: for NaN, infinity (when ``finite``) or a value out of range.
    """
    number = real(field, value, finite=finite, fix=fix)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        raise value_error(field, value, _interval(low, high, low_open, high_open), fix=fix)
    return number


def positive(field: str, value: Any, *, fix: str | None = None) -> float:
    """A finite real number ``> 0`` (see :func:`in_range`)."""
    return in_range(field, value, 0.0, low_open=True, fix=fix)


def non_negative(field: str, value: Any, *, fix: str | None = None) -> float:
    """A finite real number ``>= 0`` (see :func:`in_range`)."""
    return in_range(field, value, 0.0, fix=fix)


def unit_interval(
    field: str,
    value: Any,
    *,
    low_open: bool = False,
    high_open: bool = False,
    fix: str | None = None,
) -> float:
    """A real number in ``[0, 1]``, either end optionally open (see :func:`in_range`)."""
    return in_range(field, value, 0.0, 1.0, low_open=low_open, high_open=high_open, fix=fix)


def integer(
    field: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    whole_floats: bool = False,
    fix: str | None = None,
) -> int:
    """A whole number as a Python int.

    Args:
      field: name for the message.
      value: a Python or NumPy int (not a bool); with ``whole_floats`` also a float
        with no fractional part (``1000.0`` from a JSON file or a computation).
      minimum: smallest allowed value, or ``None``.
      maximum: largest allowed value, or ``None``.
      whole_floats: accept floats that are whole numbers.
      fix: advice appended to the message.

    Returns:
      ``int(value)``.

    Raises:
      TypeError: for a bool, a non-number, or a float when ``whole_floats`` is off.
      ValueError: for a float that is not whole (or NaN/inf) when ``whole_floats`` is
        on, or a value out of range.
    """
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        number = int(value)
    elif whole_floats and _is_real(value):
        as_float = float(value)
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise value_error(field, value, "a whole number", fix=fix)
        number = int(as_float)
    else:
        raise type_error(field, value, "an int", fix=fix)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        if minimum is not None and maximum is not None:
            rule = f"an int in [{minimum}, {maximum}]"
        elif minimum is not None:
            rule = f"an int >= {minimum}"
        else:
            rule = f"an int <= {maximum}"
        raise value_error(field, value, rule, fix=fix)
    return number


def boolean(field: str, value: Any, *, fix: str | None = None) -> bool:
    """A ``bool`` (Python or NumPy); ``TypeError`` for anything else, 0 and 1 included."""
    if not isinstance(value, bool | np.bool_):
        raise type_error(field, value, "a bool (True or False)", fix=fix)
    return bool(value)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (for "did you mean"), or ``None``.

    Example:
      >>> closest("shrink_perturbb", ["keep", "reinit", "shrink_perturb"])
      'shrink_perturb'
    """
    if not isinstance(name, str):
        return None
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def choice(field: str, value: Any, choices: Collection[str], *, fix: str | None = None) -> str:
    """One of a fixed set of names.

    Args:
      field: name for the message.
      value: the name.
      choices: the valid names.
      fix: advice appended to the message; by default the closest valid name, if
        one is close.

    Returns:
      ``value``.

    Raises:
      TypeError: if ``value`` is not a string.
      ValueError: if it is not one of ``choices`` (the message lists them).
    """
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise type_error(field, value, f"one of {listed}", fix=fix)
    if value not in choices:
        if fix is None:
            near = closest(value, choices)
            fix = f"did you mean {near!r}?" if near is not None else None
        raise value_error(field, value, f"one of {listed}", fix=fix)
    return value


def instance(field: str, value: Any, types: type | tuple[type, ...], *,
             fix: str | None = None) -> Any:
    """``value`` itself if it is an instance of ``types``; ``TypeError`` otherwise."""
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(
            t.__name__ for t in types)
        raise type_error(field, value, f"an instance of {names}", fix=fix)
    return value


def optional(check: Callable[..., _T], field: str, value: Any, **kwargs: Any) -> _T | None:
    """``None`` for ``None``, else ``check(field, value, **kwargs)``.

    Example:
      >>> optional(positive, "timescale", None) is None
      True
    """
    return None if value is None else check(field, value, **kwargs)


_LIBRARY = __name__.partition(".")[0]


def warn(text: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(text, category)`` attributed to the first caller outside the library.

    A configuration is often checked several calls deep; a fixed ``stacklevel`` would
    point at whichever library line happens to be on top. This walks out of
    ``algoperf_reinit`` and names the user's line instead.

    Example:
      >>> import warnings
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     warn("x.sed is not a known key; did you mean 'seed'?")
      >>> str(caught[0].message), caught[0].category.__name__
      ("x.sed is not a known key; did you mean 'seed'?", 'UserWarning')
    """
    frame = sys._getframe(1)
    level = 2
    while (frame.f_back is not None
           and frame.f_globals.get("__name__", "").partition(".")[0] == _LIBRARY):
        frame = frame.f_back
        level += 1
    warnings.warn(text, category, stacklevel=level)
