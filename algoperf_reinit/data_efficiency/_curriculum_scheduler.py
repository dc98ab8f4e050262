"""DeepSpeed's ``CurriculumScheduler``: one metric's difficulty over the steps.

A shell over the pure formulas of ``_difficulty`` with DeepSpeed 0.19.8's methods:

* :meth:`CurriculumScheduler.get_difficulty` — pure function of the step.
* :meth:`CurriculumScheduler.update_difficulty` — sticky at the maximum: while the
  current difficulty is below ``max_difficulty`` it becomes ``get_difficulty(step)``;
  once it reaches ``max_difficulty`` it never changes again (so a non-monotone custom
  or discrete schedule can go down until it first reaches the maximum, then freezes).
* :meth:`CurriculumScheduler.set_custom_get_difficulty` — the function of a ``custom``
  schedule (DeepSpeed's engine installs it through
  ``set_custom_curriculum_learning_schedule``); it receives the step it is given.

The scheduler does not know step offsets: DeepSpeed's curriculum sampler calls it with
its own counter, 1 for the first global batch; the legacy engine called it with
``global_steps + 1``. Its state is one number (:class:`CurriculumState`), saved by
:meth:`state_dict` as JSON-serialisable data.

Where we differ from DeepSpeed (all errors a DeepSpeed run would hit later or never):
the configuration is validated when the scheduler is built (``_config_curriculum``);
a ``custom`` schedule without a function is a ``ValueError`` at the first
:meth:`get_difficulty` or :meth:`update_difficulty` that needs it (DeepSpeed:
``TypeError: 'NoneType' object is not callable``; as in DeepSpeed it is never called
when ``min_difficulty >= max_difficulty``); installing a function on a schedule that is
not ``custom`` is a ``ValueError`` (DeepSpeed silently never calls it); a custom
function must return a real number; a negative step is a ``ValueError``. DeepSpeed
0.19.8 has no ``state_dict`` on this class (its sampler saves the difficulties); ours
is an addition, with ``current_difficulty`` and, to catch a checkpoint of another
configuration, ``min_difficulty``, ``max_difficulty`` and ``schedule_type``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import _difficulty
from algoperf_reinit.data_efficiency._config_common import CURRICULUM_METRIC_PATH, MISSING, Block
from algoperf_reinit.data_efficiency._config_metric import CurriculumMetricConfig

__all__ = ["CurriculumScheduler", "CurriculumState"]

Difficulty = int | float


class CurriculumState(NamedTuple):
    """What changes in a :class:`CurriculumScheduler`."""

    current_difficulty: Difficulty  # min_difficulty until the first update


def _number(field: str, value: Any) -> Difficulty:
    """A difficulty as a Python int (for any integral) or float (JSON-serialisable)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return _validation.real(field, value)


class CurriculumScheduler:
    """One curriculum metric's difficulty schedule, exactly as DeepSpeed 0.19.8.

    Args:
      config: the metric's dict from ``curriculum_metrics`` (DeepSpeed's keys:
        ``min_difficulty``, ``max_difficulty``, ``schedule_type``, ``schedule_config``;
        ``difficulty_type`` and ``clustering_type`` are optional here) or a
        :class:`CurriculumMetricConfig`.
      legacy_rounding: ``True``: DeepSpeed <= 0.19.6 (no lower clamp, values can start
        below ``min_difficulty``); ``False``: 0.19.8. ``None`` (default): the config's
        ``legacy_rounding``.

    Raises:
      TypeError, ValueError: for an invalid configuration, naming its key path.

    Example:
      >>> s = CurriculumScheduler({"min_difficulty": 16, "max_difficulty": 64,
      ...     "schedule_type": "fixed_linear",
      ...     "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}})
      >>> [s.update_difficulty(step) for step in (1, 2, 5, 10, 11)]
      [16, 24, 40, 64, 64]
      >>> s.state_dict()["current_difficulty"]
      64
    """

    def __init__(self, config: Mapping[str, Any] | CurriculumMetricConfig, *,
                 legacy_rounding: bool | None = None) -> None:
        if isinstance(config, Mapping):
            config = CurriculumMetricConfig.from_dict(Block(CURRICULUM_METRIC_PATH, config))
        self._config: CurriculumMetricConfig = _validation.instance(
            "config", config, CurriculumMetricConfig)
        self._legacy = (config.legacy_rounding if legacy_rounding is None
                        else _validation.boolean("legacy_rounding", legacy_rounding))
        self._custom: Callable[[int], Difficulty] | None = None
        self._state = CurriculumState(config.min_difficulty)

    @property
    def config(self) -> CurriculumMetricConfig:
        """The validated metric configuration."""
        return self._config

    @property
    def legacy_rounding(self) -> bool:
        """Whether DeepSpeed <= 0.19.6 rounding (no lower clamp) is used."""
        return self._legacy

    @property
    def state(self) -> CurriculumState:
        """The current state."""
        return self._state

    @property
    def current_difficulty(self) -> Difficulty:
        """The difficulty of the last :meth:`update_difficulty` (``min`` before any)."""
        return self._state.current_difficulty

    def set_custom_get_difficulty(self, schedule_function: Callable[[int], Difficulty]
                                  ) -> None:
        """Install the function of a ``custom`` schedule: ``step -> difficulty``."""
        if not callable(schedule_function):
            raise _validation.type_error("schedule_function", schedule_function,
                                         "a callable step -> difficulty")
        if self._config.schedule_type != "custom":
            raise _validation.value_error(
                f"{self._config.key_path}.schedule_type", self._config.schedule_type,
                "'custom' to take a custom difficulty function",
                fix="DeepSpeed would silently never call it")
        self._custom = schedule_function

    def get_difficulty(self, step: int) -> Difficulty:
        """The scheduled difficulty at ``step`` (pure: the state is not touched)."""
        step = _difficulty.check_step(step)
        cfg, sched = self._config, self._config.schedule_config
        kind = cfg.schedule_type
        if kind in ("fixed_linear", "fixed_root"):
            degree = sched.root_degree if kind == "fixed_root" else 1
            return _difficulty._fixed_root(
                step, cfg.min_difficulty, cfg.max_difficulty, sched.total_curriculum_step,
                sched.difficulty_step, degree, not self._legacy)
        if kind == "fixed_discrete":
            return _difficulty._fixed_discrete(step, sched.difficulty, sched.max_step)
        if self._custom is None:
            raise _validation.value_error(
                f"{cfg.key_path} custom difficulty function", MISSING,
                "installed for schedule_type 'custom'",
                fix="call set_custom_get_difficulty(fn) first")
        return _number(f"{cfg.key_path} custom difficulty at step {step}", self._custom(step))

    def update_difficulty(self, step: int) -> Difficulty:
        """Advance to ``step``: ``get_difficulty(step)`` until the maximum is reached.

        Returns:
          The current difficulty (frozen once it is ``>= max_difficulty``).
        """
        step = _difficulty.check_step(step)
        if self._state.current_difficulty < self._config.max_difficulty:
            self._state = CurriculumState(self.get_difficulty(step))
        return self._state.current_difficulty

    def state_dict(self) -> dict[str, Any]:
        """The state as JSON-serialisable data (with the config it belongs to)."""
        cfg = self._config
        return {"current_difficulty": self._state.current_difficulty,
                "min_difficulty": cfg.min_difficulty, "max_difficulty": cfg.max_difficulty,
                "schedule_type": cfg.schedule_type}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (checked against this configuration)."""
        block = Block("state_dict", state_dict)
        current = _number(block.key("current_difficulty"),
                          block.require("current_difficulty", "to restore a scheduler"))
        for key in ("min_difficulty", "max_difficulty", "schedule_type"):
            mine = getattr(self._config, key)
            if key in block and block.get(key) != mine:
                raise _validation.value_error(
                    block.key(key), block.get(key), f"{mine!r} as in this configuration",
                    fix="the checkpoint belongs to another curriculum configuration")
        self._state = CurriculumState(current)
