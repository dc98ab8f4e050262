"""algoperf_reinit: cycle schedules, re-initialisation and data efficiency for AlgoPerf.

The public API is re-exported here; subpackages hold one concern each
(``schedules``, ``reinit``, ``optim``; ``plotting`` is imported on demand).
"""

from algoperf_reinit import optim, reinit, schedules
from algoperf_reinit._version import __version__
from algoperf_reinit.optim import adamw, adamw_direction, nadamw, nadamw_direction, scale_by_nadam
from algoperf_reinit.reinit import (
    ModelStateResetPolicy,
    OptimizerResetPolicy,
    ParamResetPolicy,
    PlateauConfig,
)
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
    "ModelStateResetPolicy",
    "OptimizerResetPolicy",
    "ParamResetPolicy",
    "PlateauConfig",
    "ScheduleConfig",
    "Warmup",
    "__version__",
    "adamw",
    "adamw_direction",
    "build_cycle_table",
    "combine_warmup_decay_fn",
    "decay_fn",
    "jax_lr_schedule",
    "nadamw",
    "nadamw_direction",
    "optim",
    "reinit",
    "scale_by_nadam",
    "schedules",
    "table_from_cycles",
    "warmup_fn",
]
