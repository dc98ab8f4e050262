"""algoperf_reinit: cycle schedules, re-initialisation and data efficiency for AlgoPerf.

The public API is re-exported here; subpackages hold one concern each
(``schedules``; ``plotting`` is imported on demand).
"""

from algoperf_reinit import schedules
from algoperf_reinit._version import __version__
from algoperf_reinit.schedules import (
    CycleSpec,
    CycleTable,
    Decay,
    LRSchedule,
    ScheduleConfig,
    Warmup,
    build_cycle_table,
    combine_warmup_decay_fn,
    decay_fn,
    jax_lr_schedule,
    table_from_cycles,
    warmup_fn,
)

__all__ = [
    "CycleSpec",
    "CycleTable",
    "Decay",
    "LRSchedule",
    "ScheduleConfig",
    "Warmup",
    "__version__",
    "build_cycle_table",
    "combine_warmup_decay_fn",
    "decay_fn",
    "jax_lr_schedule",
    "schedules",
    "table_from_cycles",
    "warmup_fn",
]
