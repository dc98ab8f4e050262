"""Cycle-structured learning-rate schedules evaluated from a cycle table.

A schedule here is a :class:`CycleTable`: a pytree of per-cycle arrays that is
also an ``optax.Schedule`` (call it with a step). See ``_table`` for the boundary
convention, ``_config`` for the rules that split a budget into cycles, and
``_decays`` for what each decay kind takes and stores.

Naming: the AlgoPerf-facing builders (``warmup_fn``, ``decay_fn``,
``combine_warmup_decay_fn``, ``jax_lr_schedule``) read the ``learning_rate`` and
``warmup_factor`` hyperparameters; the table builders (``plan_cycles``,
``build_cycle_table``, ``CycleSpec``) call the same values ``peak`` and
``warmup_fraction``. Error messages name what the caller passed.
"""

from algoperf_reinit.schedules._compat import pytorch_cosine_warm_restarts, timm_cosine
from algoperf_reinit.schedules._config import ScheduleConfig
from algoperf_reinit.schedules._plan import build_cycle_table, cycle_lengths, plan_cycles
from algoperf_reinit.schedules._scale import (
    CycleScheduleState,
    current_cycle,
    current_learning_rate,
    replace_table,
    scale_by_cycle_table,
    schedule_state,
    set_clock_time,
)
from algoperf_reinit.schedules._seed import (
    DecayPiece,
    LRSchedule,
    WarmupPiece,
    combine_warmup_decay_fn,
    decay_fn,
    hyperparameter,
    jax_lr_schedule,
    warmup_fn,
)
from algoperf_reinit.schedules._shapes import (
    DECAY_NAMES,
    WARMUP_NAMES,
    Decay,
    DecayId,
    Warmup,
    WarmupId,
    decay_shape,
    warmup_shape,
)
from algoperf_reinit.schedules._table import (
    CLOCKS,
    CycleSpec,
    CycleTable,
    cycle_index,
    evaluate,
    table_from_cycles,
)

__all__ = [
    "CLOCKS",
    "DECAY_NAMES",
    "WARMUP_NAMES",
    "CycleScheduleState",
    "CycleSpec",
    "CycleTable",
    "Decay",
    "DecayId",
    "DecayPiece",
    "LRSchedule",
    "ScheduleConfig",
    "Warmup",
    "WarmupId",
    "WarmupPiece",
    "build_cycle_table",
    "combine_warmup_decay_fn",
    "current_cycle",
    "current_learning_rate",
    "cycle_index",
    "cycle_lengths",
    "decay_fn",
    "decay_shape",
    "evaluate",
    "hyperparameter",
    "jax_lr_schedule",
    "plan_cycles",
    "pytorch_cosine_warm_restarts",
    "replace_table",
    "scale_by_cycle_table",
    "schedule_state",
    "set_clock_time",
    "table_from_cycles",
    "timm_cosine",
    "warmup_fn",
    "warmup_shape",
]
