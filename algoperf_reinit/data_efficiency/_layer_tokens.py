"""Layer tokens: what random-LTD really computed, and the learning rate as their function.

Two counts of layer tokens (tokens times the layers they pass through):

* DeepSpeed's ``consumed_layer_tokens`` (``RandomLTDScheduler.state``): per optimizer
  step ``global_batch_size * (r * n_ltd + max_value * (L - n_ltd))`` with the
  *scheduled* kept length ``r``, whatever the real sequence length.
* :class:`LayerTokenCounter`: what the train step really computed, per optimizer step
  ``batch * (min(r_b, s) * n_ltd + s * (L - n_ltd))`` with ``s`` the real (e.g.
  curriculum-truncated) sequence length and ``r_b`` the bucketed kept length
  (``None``: no dropping). With buckets rounded down and ``s = max_value`` it is at most
  DeepSpeed's; it equals it once the kept length reaches the full length. Counted once
  per step, like DeepSpeed's (gradient accumulation calls it several times).

**The layer-token LR schedule** (``layer_token_lr_schedule``: DeepSpeed names it and
raises ``NotImplementedError``): :func:`layer_token_lr_table` builds a
:class:`~algoperf_reinit.schedules.CycleTable` on the ``layer_tokens`` clock: a linear
warmup from the first cycle's ``init_value`` to the peak over
``warmup_layer_tokens``, then the decay of a
:class:`~algoperf_reinit.schedules.ScheduleConfig` over ``total_layer_tokens`` (one
cosine cycle by default; several cycles are allowed, only the first one warms up).
The optimizer keeps the table in its state (``scale_by_cycle_table(table,
"layer_tokens")``, or ``optim.nadamw(table, clock="layer_tokens")``); the host writes
the computed count into the state before each step with :func:`set_layer_tokens`, a
change of data: the train step is not recompiled. The clock is float32 (7 significant
digits: a relative error below ``1e-7`` in the learning rate's position).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._config_ltd import LayerTokenLRScheduleConfig
from algoperf_reinit.data_efficiency._config_routing import RandomLTDConfig
from algoperf_reinit.schedules import (
    CycleTable,
    ScheduleConfig,
    plan_cycles,
    set_clock_time,
    table_from_cycles,
)

__all__ = [
    "LAYER_TOKENS_CLOCK",
    "LayerTokenCounter",
    "layer_token_lr_table",
    "set_layer_tokens",
    "step_layer_tokens",
]

LAYER_TOKENS_CLOCK = "layer_tokens"
"""The schedules' clock of consumed layer tokens."""


def step_layer_tokens(batch_size: int, seq_len: int, kept: int | None, total_layer_num: int,
                      ltd_layers: int) -> int:
    """Layer tokens of one optimizer step.

    Args:
      batch_size: samples of the step.
      seq_len: their sequence length.
      kept: tokens kept in each random-LTD layer (``None``, or ``>= seq_len``: all).
      total_layer_num: layers of the model.
      ltd_layers: layers that drop tokens.

    Returns:
      ``batch_size * (min(kept, seq_len) * ltd_layers + seq_len * (total_layer_num -
      ltd_layers))``.

    Example:
      >>> step_layer_tokens(4, 128, 64, total_layer_num=4, ltd_layers=2)
      1536
    """
    batch = _validation.integer("batch_size", batch_size, minimum=1)
    seq = _validation.integer("seq_len", seq_len, minimum=1)
    total = _validation.integer("total_layer_num", total_layer_num, minimum=1)
    n_ltd = _validation.integer("ltd_layers", ltd_layers, minimum=0, maximum=total)
    kept = seq if kept is None else min(_validation.integer("kept", kept, minimum=0), seq)
    return batch * (kept * n_ltd + seq * (total - n_ltd))


class LayerTokenCounter:
    """The layer tokens really computed, counted once per optimizer step.

    Args:
      total_layer_num: layers of the model.
      ltd_layers: layers that drop tokens.
      batch_size: samples per optimizer step (default of :meth:`update`), or ``None``.

    Example:
      >>> counter = LayerTokenCounter(total_layer_num=4, ltd_layers=2, batch_size=2)
      >>> counter.update(0, seq_len=64, kept=16), counter.update(0, seq_len=64, kept=16)
      (320, 320)
      >>> counter.update(1, seq_len=128, kept=None)
      1344
    """

    def __init__(self, total_layer_num: int, ltd_layers: int, batch_size: int | None = None
                 ) -> None:
        self._total = _validation.integer("total_layer_num", total_layer_num, minimum=1)
        self._n_ltd = _validation.integer("ltd_layers", ltd_layers, minimum=0,
                                          maximum=self._total)
        self._batch = _validation.optional(_validation.integer, "batch_size", batch_size,
                                           minimum=1)
        self._tokens, self._last = 0, -1

    @classmethod
    def from_config(cls, config: RandomLTDConfig) -> LayerTokenCounter:
        """The counter of a ``random_ltd`` configuration (its ``global_batch_size``)."""
        config = _validation.instance("config", config, RandomLTDConfig)
        return cls(config.total_layer_num, config.random_ltd_layer_num,
                   config.global_batch_size)

    @property
    def layer_tokens(self) -> int:
        """The layer tokens counted so far."""
        return self._tokens

    def update(self, step: int, *, seq_len: int, kept: int | None,
               batch_size: int | None = None) -> int:
        """Counts optimizer step ``step`` (once, however often it is called).

        Args:
          step: the global step (0-based).
          seq_len: the sequence length the step really ran at.
          kept: the kept length it really ran at (``None``: no dropping).
          batch_size: samples of the step; default the counter's.

        Returns:
          The layer tokens so far, this step included.

        Raises:
          ValueError: without a batch size, or for a step before the last one counted.
        """
        step = _validation.integer("step", step, minimum=0)
        batch = self._batch if batch_size is None else batch_size
        if batch is None:
            raise _validation.value_error("batch_size", None, "given",
                                          fix="pass it here or to LayerTokenCounter")
        if step < self._last:
            raise _validation.value_error("step", step, f">= the last step counted, {self._last}")
        if step != self._last:
            self._tokens += step_layer_tokens(batch, seq_len, kept, self._total, self._n_ltd)
            self._last = step
        return self._tokens

    def state_dict(self) -> dict[str, int]:
        """JSON-serialisable state."""
        return {"layer_tokens": self._tokens, "current_steps": self._last}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self._tokens = _validation.integer("state_dict['layer_tokens']",
                                           state_dict["layer_tokens"], minimum=0)
        self._last = _validation.integer("state_dict['current_steps']",
                                         state_dict["current_steps"], minimum=-1)


def layer_token_lr_table(config: LayerTokenLRScheduleConfig, learning_rate: float,
                         decay: ScheduleConfig | None = None, *,
                         capacity: int | None = None) -> CycleTable:
    """The learning rate as a function of layer tokens (a ``layer_tokens``-clock table).

    Args:
      config: the enabled ``layer_token_lr_schedule`` block.
      learning_rate: the peak.
      decay: the schedule over ``total_layer_tokens`` (its clock must be
        ``layer_tokens``; its warmup settings are replaced by the block's); default one
        cosine cycle to 0.
      capacity: table rows (see ``table_from_cycles``).

    Returns:
      The table: ``table(layer_tokens)`` is the learning rate.

    Raises:
      ValueError: for a disabled block, a decay on another clock, or a warmup not
        shorter than the first cycle.

    Example:
      >>> cfg = LayerTokenLRScheduleConfig(enabled=True, total_layer_tokens=1000,
      ...                                  warmup_layer_tokens=100)
      >>> table = layer_token_lr_table(cfg, 1.0)
      >>> [round(float(table(t)), 3) for t in (0, 50, 100, 550, 1000)]
      [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    config = _validation.instance("config", config, LayerTokenLRScheduleConfig)
    if not config.enabled:
        raise _validation.value_error(f"{config.key_path}.enabled", False,
                                      "true to build a layer-token learning-rate schedule")
    decay = ScheduleConfig(clock=LAYER_TOKENS_CLOCK) if decay is None else _validation.instance(
        "decay", decay, ScheduleConfig)
    if decay.clock != LAYER_TOKENS_CLOCK:
        raise _validation.value_error("decay.clock", decay.clock, f"{LAYER_TOKENS_CLOCK!r}",
                                      fix="build the ScheduleConfig with clock='layer_tokens'")
    decay = dataclasses.replace(decay, warmup_shapes="none", alter_warmup=0.0,
                                warmup_scales=1.0)
    cycles = plan_cycles(decay, config.total_layer_tokens, learning_rate, 0.0)
    warmup = float(config.warmup_layer_tokens)
    if warmup >= cycles[0].length:
        raise _validation.value_error(
            f"{config.key_path}.warmup_layer_tokens", config.warmup_layer_tokens,
            f"< the first cycle's length {cycles[0].length:g}",
            fix="shorten the warmup or use fewer cycles")
    cycles[0] = dataclasses.replace(cycles[0], warmup=warmup,
                                    warmup_shape=config.warmup_type if warmup else "none")
    return table_from_cycles(cycles, capacity=capacity, clock=LAYER_TOKENS_CLOCK)


def set_layer_tokens(opt_state: Any, layer_tokens: int) -> Any:
    """Writes the layer tokens into the optimizer state's ``layer_tokens`` clock.

    Args:
      opt_state: an optimizer state holding a ``scale_by_cycle_table`` state.
      layer_tokens: the count so far (e.g. :attr:`LayerTokenCounter.layer_tokens`).

    Returns:
      The new state (same shapes and dtypes: no recompilation).
    """
    return set_clock_time(opt_state, _validation.integer("layer_tokens", layer_tokens,
                                                         minimum=0))
