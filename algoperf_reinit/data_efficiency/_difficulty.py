"""DeepSpeed's pacing formulas: difficulty (or kept length) as a pure function of the step.

Both schedulers share these: :class:`CurriculumScheduler` (curriculum difficulty,
DeepSpeed's ``CurriculumScheduler``) and :class:`RandomLTDScheduler` (random-LTD kept
length, DeepSpeed's ``RandomLTDScheduler``). They run on the host in float64 with
Python semantics (``**``, ``math.floor``, ``%``), exactly as DeepSpeed computes them:
evaluated in float32 inside a jitted graph, boundary steps flip (``0.29 * 100`` is
``28.999999999999996`` in float64, so DeepSpeed's linear 0 -> 100 schedule over 100
steps gives 28 at step 29, and so do we).

With ``lo = min_difficulty``, ``hi = max_difficulty``, ``T = total_step``,
``q = difficulty_step`` and ``d = root_degree``, :func:`fixed_root_difficulty` is::

    v = floor((step / T) ** (1 / d) * (hi - lo) + lo)   # no clamp of step / T to 1
    v = v - v % q                # round down to a multiple of q, counted from 0, not lo
    v = max(v, ceil(lo / q) * q) # lower_clamp=True only (DeepSpeed 0.19.8, PR #8334)
    v = min(v, hi)

``fixed_linear`` is ``d = 1`` (``x ** 1.0`` is ``x`` exactly), which is also
random-LTD's only schedule (``T = require_steps``, ``q = seq_per_step``, no lower clamp
in DeepSpeed 0.19.8; ``lower_clamp=True`` is the fix of its open PR #8529).
Consequences: the value is a multiple of ``q`` except when clamped to ``hi``; a ``hi``
that is not a multiple of ``q`` is reached only once the unrounded value passes the
next multiple of ``q`` above ``hi``, i.e. after ``T`` (min 16, max 100, q 16, T 100:
96 at steps 99-114, 100 from step 115); without the lower clamp the first values can
lie below ``lo`` (min 8, q 16: 0 at step 0).

:func:`fixed_discrete_difficulty` is a step function with inclusive boundaries:
``difficulty[i]`` for the first ``i`` with ``step <= max_step[i]``, and
``difficulty[-1]`` after ``max_step[-1]``.

Where we differ from DeepSpeed: a negative step is a ``ValueError`` here. DeepSpeed
does not guard it: for ``d != 1`` Python's ``**`` of a negative base returns a complex
number and ``math.floor`` raises ``TypeError``; for ``d = 1`` it returns a value below
``lo`` (then lifted by the lower clamp, if any).

Example:
  >>> fixed_root_difficulty(1, 64, 2048, 1000, 8, root_degree=3)
  256
  >>> [fixed_linear_difficulty(s, 16, 100, 100, 16) for s in (0, 99, 114, 115)]
  [16, 96, 96, 100]
  >>> fixed_linear_difficulty(0, 8, 64, 10, 16, lower_clamp=False)
  0
  >>> [fixed_discrete_difficulty(s, [1, 2, 3], [5, 10]) for s in (5, 6, 10, 11)]
  [1, 2, 2, 3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from algoperf_reinit import _validation

__all__ = [
    "aligned_minimum",
    "check_step",
    "fixed_discrete_difficulty",
    "fixed_linear_difficulty",
    "fixed_root_difficulty",
]

_NEGATIVE_STEP_FIX = (
    "steps count from 0 (DeepSpeed does not guard negative steps: with root_degree != 1 "
    "it fails with a TypeError)"
)


def check_step(step: int, field: str = "step") -> int:
    """A step as a Python int ``>= 0`` (``TypeError`` for a float or bool)."""
    return _validation.integer(field, step, minimum=0, fix=_NEGATIVE_STEP_FIX)


def aligned_minimum(minimum: int, step_size: int) -> int:
    """The first multiple of ``step_size`` that is ``>= minimum``: ``ceil(min / q) * q``.

    Example:
      >>> aligned_minimum(8, 16), aligned_minimum(16, 16), aligned_minimum(-5, 8)
      (16, 16, 0)
    """
    return -(-minimum // step_size) * step_size


def _fixed_root(step: int, lo: int, hi: int, total: int, size: int, degree: float,
                lower_clamp: bool) -> int:
    # The formula of the module docstring; arguments already validated.
    frac = (float(step) / total) ** (1.0 / degree)
    value = math.floor(frac * (hi - lo) + lo)
    value -= value % size
    if lower_clamp:
        value = max(value, aligned_minimum(lo, size))
    return min(value, hi)


def fixed_root_difficulty(
    step: int,
    min_difficulty: int,
    max_difficulty: int,
    total_step: int,
    difficulty_step: int,
    *,
    root_degree: float = 1,
    lower_clamp: bool = True,
) -> int:
    """DeepSpeed's ``fixed_root`` pacing at ``step`` (formula in the module docstring).

    Args:
      step: the step (curriculum step for the sampler, global step for random-LTD).
      min_difficulty: ``lo``, the value at step 0 (before rounding).
      max_difficulty: ``hi``, the final value.
      total_step: ``T``, steps from ``lo`` to ``hi`` (``total_curriculum_step`` /
        ``require_steps``).
      difficulty_step: ``q``, values are multiples of it (``difficulty_step`` /
        ``seq_per_step``).
      root_degree: ``d``; 1 is ``fixed_linear``, 2 a square root, 3 a cube root.
      lower_clamp: lift values below ``lo`` to ``ceil(lo / q) * q`` (DeepSpeed 0.19.8's
        curriculum; ``False`` is DeepSpeed <= 0.19.6 and random-LTD in every version).

    Returns:
      The difficulty, a Python int.

    Raises:
      TypeError: if an argument is not an int (``root_degree``: a real number).
      ValueError: for a negative step, ``T`` or ``q`` below 1, or ``d <= 0``.
    """
    step = check_step(step)
    lo = _validation.integer("min_difficulty", min_difficulty)
    hi = _validation.integer("max_difficulty", max_difficulty)
    total = _validation.integer("total_step", total_step, minimum=1)
    size = _validation.integer("difficulty_step", difficulty_step, minimum=1)
    degree = _validation.positive("root_degree", root_degree)
    return _fixed_root(step, lo, hi, total, size, degree, bool(lower_clamp))


def fixed_linear_difficulty(
    step: int,
    min_difficulty: int,
    max_difficulty: int,
    total_step: int,
    difficulty_step: int,
    *,
    lower_clamp: bool = True,
) -> int:
    """DeepSpeed's ``fixed_linear`` pacing: :func:`fixed_root_difficulty` with ``d = 1``."""
    return fixed_root_difficulty(step, min_difficulty, max_difficulty, total_step,
                                 difficulty_step, root_degree=1, lower_clamp=lower_clamp)


def _fixed_discrete(step: int, difficulty: Sequence[int], max_step: Sequence[int]) -> int:
    for level, boundary in zip(difficulty, max_step, strict=False):
        if step <= boundary:
            return level
    return difficulty[-1]


def fixed_discrete_difficulty(step: int, difficulty: Sequence[int],
                              max_step: Sequence[int]) -> int:
    """DeepSpeed's ``fixed_discrete`` pacing: a step function, boundaries inclusive.

    Args:
      step: the step.
      difficulty: ``k + 1`` levels.
      max_step: ``k`` strictly increasing last steps of the first ``k`` levels.

    Returns:
      ``difficulty[i]`` for the first ``i`` with ``step <= max_step[i]``, else
      ``difficulty[-1]``.

    Raises:
      TypeError: for a step that is not an int.
      ValueError: for a negative step or lists of inconsistent lengths.
    """
    step = check_step(step)
    if len(max_step) == 0 or len(difficulty) != len(max_step) + 1:
        raise _validation.value_error(
            "difficulty", list(difficulty),
            f"a list of len(max_step) + 1 = {len(max_step) + 1} levels with max_step non-empty")
    return _fixed_discrete(step, difficulty, max_step)
