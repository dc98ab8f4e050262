"""DeepSpeed's ``RandomLTDScheduler``: random-LTD's kept (reserved) length and layer tokens.

The kept length is ``fixed_linear`` pacing (``_difficulty``) from ``min_value`` to
``max_value`` over ``require_steps``, rounded down to a multiple of ``seq_per_step``,
with no lower clamp by default (DeepSpeed 0.19.8: min 8, ``seq_per_step`` 16 keeps 0
tokens at first); ``min_clamp=True`` lifts it to the first multiple of ``seq_per_step``
``>= min_value`` (the fix of DeepSpeed's open PR #8529). A ``max_value`` that is not a
multiple of ``seq_per_step`` is reached after ``require_steps`` (ViT: 32 -> 197, step 8,
3910 steps: 192 at step 3958, 197 at step 4000).

:meth:`RandomLTDScheduler.update_seq` is called with the global step (0 for the first
optimizer step; no +1, unlike the curriculum) before every training forward:

* while ``current_value < max_value``: ``current_value = get_value(step)`` (sticky at
  the maximum);
* if ``step != current_steps`` (once per optimizer step, however many micro-batches
  call it): ``consumed_layer_tokens += global_batch_size * (current_value * n_ltd +
  max_value * (total_layer_num - n_ltd))`` and ``current_steps = step``.

The count uses the scheduled kept length and ``max_value`` for the other layers,
whatever the real sequence length (DeepSpeed's definition). ``current_value`` is
``min_value`` (unrounded) and ``current_steps`` is -1 until the first update.

Where we differ from DeepSpeed: the configuration is validated when the scheduler is
built (an unsupported ``schedule_type`` or a missing ``global_batch_size`` fail here,
not at the first update); :meth:`get_total_layer_tokens` does not mutate the scheduler
(DeepSpeed's runs ``update_seq(0..n-1)`` on itself, from wherever it is); it returns
what DeepSpeed's returns on a fresh scheduler; :meth:`load_state_dict` checks that
``min_value``/``max_value`` match the configuration (DeepSpeed overwrites its schedule's
bounds with the checkpoint's); ``layer_token_lr_schedule.enabled`` is accepted
(DeepSpeed: ``NotImplementedError``) — this scheduler counts DeepSpeed's tokens; the
tokens really computed (``LayerTokenCounter``) drive the layer-token learning rate
(``layer_token_lr_table``, in ``_layer_tokens``); a negative step is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency import _difficulty
from algoperf_reinit.data_efficiency._config_common import MISSING, RANDOM_LTD_PATH, Block
from algoperf_reinit.data_efficiency._config_routing import RandomLTDConfig

__all__ = ["RandomLTDScheduler", "RandomLTDState"]

_STATE_KEYS = ("consumed_layer_tokens", "current_steps", "current_value", "min_value",
               "max_value")


class RandomLTDState(NamedTuple):
    """What changes in a :class:`RandomLTDScheduler` (Python ints)."""

    current_value: int  # kept length; min_value (unrounded) before the first update
    current_steps: int  # the last step counted; -1 before the first update
    consumed_layer_tokens: int  # DeepSpeed's layer-token count


class RandomLTDScheduler:
    """Random-LTD's kept-length schedule and layer-token count, as DeepSpeed 0.19.8.

    Args:
      config: the ``random_ltd`` dict (DeepSpeed's keys; ``enabled`` may be left out;
        the engine-injected ``global_batch_size`` is required) or a
        :class:`RandomLTDConfig` (enabled, with ``global_batch_size``: parse the whole
        DeepSpeed config to have it injected from ``train_batch_size``).
      min_clamp: never keep fewer than the first multiple of ``seq_per_step`` that is
        ``>= min_value`` (off by default, for exactness with DeepSpeed).

    Raises:
      TypeError, ValueError: for an invalid configuration, naming its key path.

    Example:
      >>> s = RandomLTDScheduler({"total_layer_num": 4, "random_ltd_layer_num": 2,
      ...     "global_batch_size": 4, "random_ltd_schedule": {"min_value": 16,
      ...     "max_value": 64, "schedule_type": "fixed_linear",
      ...     "schedule_config": {"require_steps": 6, "seq_per_step": 8}}})
      >>> [s.update_seq(step) for step in range(3)], s.state.consumed_layer_tokens
      ([16, 24, 32], 2112)
    """

    def __init__(self, config: Mapping[str, Any] | RandomLTDConfig, *,
                 min_clamp: bool = False) -> None:
        if isinstance(config, Mapping):
            config = RandomLTDConfig.from_dict(Block(RANDOM_LTD_PATH, {"enabled": True,
                                                                       **config}))
        self._config: RandomLTDConfig = _validation.instance("config", config,
                                                             RandomLTDConfig)
        p = config.key_path
        if not config.enabled:
            raise _validation.value_error(f"{p}.enabled", False,
                                          "true to build a RandomLTDScheduler")
        if config.global_batch_size is None:
            raise _validation.value_error(
                f"{p}.global_batch_size", MISSING, "given to count layer tokens",
                fix="DeepSpeed's engine injects train_batch_size: set it, or parse the whole "
                    "DeepSpeed config with parse_data_efficiency_config")
        self._min_clamp = _validation.boolean("min_clamp", min_clamp)
        schedule = config.random_ltd_schedule
        self._lo, self._hi = schedule.min_value, schedule.max_value
        self._steps = schedule.schedule_config.require_steps
        self._size = schedule.schedule_config.seq_per_step
        self._state = self._initial_state()

    def _initial_state(self) -> RandomLTDState:
        return RandomLTDState(current_value=self._lo, current_steps=-1,
                              consumed_layer_tokens=0)

    @property
    def config(self) -> RandomLTDConfig:
        """The validated ``random_ltd`` configuration."""
        return self._config

    @property
    def min_clamp(self) -> bool:
        """Whether kept lengths are clamped up to ``ceil(min / seq_per_step) * seq_per_step``."""
        return self._min_clamp

    @property
    def state(self) -> RandomLTDState:
        """The current state."""
        return self._state

    def get_random_ltd_layer_num(self) -> int:
        """How many layers drop tokens (``random_ltd_layer_num``)."""
        return self._config.random_ltd_layer_num

    def _layer_tokens(self, kept: int) -> int:
        cfg = self._config
        n_ltd = cfg.random_ltd_layer_num
        return cfg.global_batch_size * (kept * n_ltd + self._hi * (cfg.total_layer_num - n_ltd))

    def _value(self, step: int) -> int:
        return _difficulty._fixed_root(step, self._lo, self._hi, self._steps, self._size, 1,
                                       self._min_clamp)

    def get_value(self, step: int) -> int:
        """The scheduled kept length at global step ``step`` (pure)."""
        return self._value(_difficulty.check_step(step))

    def get_current_seq(self) -> int:
        """The kept length of the last :meth:`update_seq` (``min_value`` before any)."""
        return self._state.current_value

    def update_seq(self, step: int) -> int:
        """Advance to global step ``step``; count its layer tokens once.

        Returns:
          The kept length (frozen once it reaches ``max_value``).
        """
        step = _difficulty.check_step(step)
        value, last, consumed = self._state
        if value < self._hi:
            value = self._value(step)
        if step != last:
            consumed += self._layer_tokens(value)
            last = step
        self._state = RandomLTDState(value, last, consumed)
        return value

    def get_total_layer_tokens(self, train_iters: int) -> int:
        """Layer tokens of ``train_iters`` optimizer steps from step 0 (not mutating).

        Equal to DeepSpeed's ``get_total_layer_tokens`` on a fresh scheduler (which
        runs ``update_seq(0..train_iters-1)`` on itself).
        """
        total_steps = _validation.integer("train_iters", train_iters, minimum=0)
        value, total, step = self._lo, 0, 0
        while step < total_steps and value < self._hi:
            value = self._value(step)
            total += self._layer_tokens(value)
            step += 1
        # From here the value is sticky at max_value: every further step costs the same.
        return total + (total_steps - step) * self._layer_tokens(self._hi)

    def reset_to_init(self) -> None:
        """Back to the state before the first update."""
        self._state = self._initial_state()

    def state_dict(self) -> dict[str, int]:
        """DeepSpeed's checkpoint entry ``random_ltd`` (JSON-serialisable)."""
        value, last, consumed = self._state
        return {"consumed_layer_tokens": consumed, "current_steps": last,
                "current_value": value, "min_value": self._lo, "max_value": self._hi}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (also DeepSpeed's ``random_ltd`` entry)."""
        block = Block("state_dict", state_dict)
        when = "to restore a RandomLTDScheduler"
        for key, mine in (("min_value", self._lo), ("max_value", self._hi)):
            given = _validation.integer(block.key(key), block.require(key, when))
            if given != mine:
                raise _validation.value_error(
                    block.key(key), given, f"{mine} as in this configuration",
                    fix="the checkpoint belongs to another random_ltd_schedule")
        self._state = RandomLTDState(
            current_value=_validation.integer(block.key("current_value"),
                                              block.require("current_value", when), minimum=0),
            current_steps=_validation.integer(block.key("current_steps"),
                                              block.require("current_steps", when), minimum=-1),
            consumed_layer_tokens=_validation.integer(
                block.key("consumed_layer_tokens"),
                block.require("consumed_layer_tokens", when), minimum=0))
