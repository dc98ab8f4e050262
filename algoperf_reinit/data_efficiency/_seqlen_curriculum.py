"""The sequence-length curriculum: AlgoPerf-legal, inside ``data_selection``.

``data_selection`` sees only an infinite queue of batches, so the curriculum acts on
each batch after the fact: :class:`SeqlenCurriculum` truncates it
(``seqlen_truncate``) or re-packs it (``seqlen_reshape``) to the current difficulty,
as a jitted op with the length static (``_seqlen_ops``); batches it does not recognise
as sequences pass through unchanged (the rule and the per-workload table are in
``_seqlen_ops``).

Per batch, on the host:

1. ``curriculum_step = global_step + step_offset``. The default offset
   :data:`CURRICULUM_FIRST_STEP` = 1 matches both of DeepSpeed's conventions: its
   data-efficiency sampler counts global batches from 1, its legacy engine path used
   ``global_steps + 1`` (``global_steps`` = completed optimizer steps, 0 during the
   first); AlgoPerf's ``global_step`` is 0 for the first batch.
2. ``difficulty = scheduler.update_difficulty(curriculum_step)``: DeepSpeed's own
   float64 formulas, sticky at the maximum (``CurriculumScheduler``).
3. ``bucket = buckets(difficulty)`` (``_buckets``; by default at most 8 values chosen
   from the schedule, rounded down).
4. The length, from a difficulty ``d`` and the batch's own length ``S``:
   ``unit="tokens"``: ``L = d`` (a whole number); ``unit="fraction"``:
   ``L = ceil(d * S / max_difficulty)``, computed exactly with rationals (so the
   schedule ``max_difficulty`` is the whole length, and one configuration fits
   workloads of different lengths; rounding up gives every positive difficulty at
   least one token). Either way ``L = min(L, S)``; ``L >= S`` passes the batch through.

**Tokens** (:attr:`SeqlenCurriculum.tokens`, Python ints, for a token-based learning
rate decay): ``scheduled`` is DeepSpeed's and Megatron's count, rows times the
scheduled (unbucketed) length — ``B * L`` truncated, ``ceil(B * S / L) * L``
re-packed; ``computed`` is what the train step really sees, rows (padding rows
included) times the bucketed length; ``real`` counts the non-zero ``weights`` of the
batches handed on (the tokens that carry a loss), computed on device and read back
without blocking (a batch's count is read once later batches are queued).

Where we differ from DeepSpeed: the lengths are bucketed (DeepSpeed compiles nothing
ahead and runs every scheduled length); re-packed batches are padded with weight-0
rows to a multiple of the device count; the fraction unit and the pass-through of
non-sequence batches are ours; a scheduled length below 1 token (legacy rounding can
schedule 0) is an error at construction, not an empty batch.

Example:
  >>> import numpy as np
  >>> curriculum = SeqlenCurriculum({"min_difficulty": 16, "max_difficulty": 64,
  ...     "schedule_type": "fixed_linear",
  ...     "schedule_config": {"total_curriculum_step": 3, "difficulty_step": 8}})
  >>> tokens = np.ones((4, 64), np.int32)
  >>> batch = {"inputs": tokens, "targets": tokens, "weights": np.ones((4, 64), np.float32)}
  >>> [curriculum(batch, global_step=k)["inputs"].shape[1] for k in range(4)]
  [32, 48, 64, 64]
  >>> curriculum.tokens
  TokenCounts(scheduled=832, computed=832, real=832)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from algoperf_reinit import _validation
from algoperf_reinit.data_efficiency._buckets import (
    DEFAULT_MAX_BUCKETS,
    ShapeBuckets,
    ShapeCounter,
)
from algoperf_reinit.data_efficiency._config import (
    DataEfficiencyConfig,
    parse_data_efficiency_config,
)
from algoperf_reinit.data_efficiency._curriculum_scheduler import CurriculumScheduler
from algoperf_reinit.data_efficiency._schedule_runs import CURRICULUM_FIRST_STEP, curriculum_runs
from algoperf_reinit.data_efficiency._seqlen_ops import (
    SEQLEN_MODES,
    WEIGHTS_KEY,
    count_weights,
    reshaped_rows,
    seqlen_op,
    sequence_batch,
)

__all__ = ["UNITS", "SeqlenCurriculum", "SeqlenPlan", "TokenCounts"]

UNITS = ("tokens", "fraction")
"""A difficulty is a length in tokens, or ``difficulty / max_difficulty`` of the batch's."""
_PENDING = 64  # token counts kept on device before the older ones are read back


class TokenCounts(NamedTuple):
    """Tokens consumed so far (see the module docstring)."""

    scheduled: int  # DeepSpeed's count: rows x the scheduled length
    computed: int  # rows (padding included) x the bucketed length
    real: int  # non-zero weights in the batches handed on


class SeqlenPlan(NamedTuple):
    """What happens to one batch, decided on the host."""

    curriculum_step: int
    difficulty: int | float  # the scheduler's value
    bucket: int | float  # its bucket
    scheduled_length: int  # min(length of difficulty, S)
    length: int  # min(length of bucket, S): what the batch is cut to
    rows: int  # rows of the batch handed on (padding rows included)


class SeqlenCurriculum:
    """Truncate or re-pack each sequence batch to the scheduled, bucketed length.

    Args:
      scheduler: a :class:`CurriculumScheduler`, or a metric dict /
        ``CurriculumMetricConfig`` to build one from (a ``custom`` schedule needs its
        function installed first).
      mode: one of :data:`SEQLEN_MODES`.
      unit: one of :data:`UNITS` (see the module docstring).
      step_offset: ``curriculum_step - global_step``, default 1 (DeepSpeed's).
      buckets: the difficulty buckets (a :class:`ShapeBuckets` or difficulty values);
        default: chosen from the schedule's runs.
      max_buckets: the bound for the default buckets.
      rounding: ``"down"``/``"up"`` for the default buckets.
      num_steps: horizon of a ``custom`` schedule for the default buckets.
      mesh: the 1-D ``'batch'`` mesh of the output; default: the batch's own mesh
        (its ``inputs``' ``NamedSharding``), else every device.

    Raises:
      TypeError, ValueError: for invalid arguments, or buckets that give a length
        below 1 token.
    """

    def __init__(self, scheduler: CurriculumScheduler | Mapping[str, Any] | Any, *,
                 mode: str = "seqlen_truncate", unit: str = "tokens",
                 step_offset: int = CURRICULUM_FIRST_STEP,
                 buckets: ShapeBuckets | Any = None,
                 max_buckets: int = DEFAULT_MAX_BUCKETS, rounding: str = "down",
                 num_steps: int | None = None, mesh: Mesh | None = None) -> None:
        if not isinstance(scheduler, CurriculumScheduler):
            scheduler = CurriculumScheduler(scheduler)
        self._scheduler = scheduler
        self._mode = _validation.choice("mode", mode, SEQLEN_MODES)
        self._unit = _validation.choice("unit", unit, UNITS)
        self._offset = _validation.integer("step_offset", step_offset, minimum=0)
        if buckets is None:
            runs = curriculum_runs(scheduler, first_step=self._offset, num_steps=num_steps)
            buckets = ShapeBuckets.from_runs(runs, max_buckets=max_buckets, rounding=rounding)
        elif not isinstance(buckets, ShapeBuckets):
            buckets = ShapeBuckets(buckets, rounding=rounding)
        if buckets.dims != 1:
            raise _validation.value_error("buckets", buckets, "buckets of one difficulty")
        self._buckets = buckets
        self._check_smallest()
        if mesh is not None:
            _validation.instance("mesh", mesh, Mesh)
            if tuple(mesh.axis_names) != ("batch",):
                raise _validation.value_error("mesh.axis_names", mesh.axis_names,
                                              "('batch',), a 1-D mesh")
        self._mesh = mesh
        self._counter = ShapeCounter(bound=len(buckets))
        self._tokens = TokenCounts(0, 0, 0)
        self._pending: list[jax.Array] = []
        self._passed = 0
        self._last: SeqlenPlan | None = None
        self._ops: dict[tuple[int, int, Mesh], Callable[..., Any]] = {}

    @classmethod
    def from_config(cls, config: DataEfficiencyConfig | Mapping[str, Any] | str, *,
                    schedule_function: Callable[[int], Any] | None = None,
                    **kwargs: Any) -> SeqlenCurriculum:
        """The curriculum of a DeepSpeed config's ``seqlen_truncate``/``seqlen_reshape`` metric.

        Args:
          config: a :class:`DataEfficiencyConfig`, or what
            ``parse_data_efficiency_config`` takes (the legacy top-level block becomes
            a ``seqlen_truncate`` metric).
          schedule_function: the function of a ``custom`` schedule.
          **kwargs: the other arguments of :class:`SeqlenCurriculum` (not ``mode``).
        """
        if not isinstance(config, DataEfficiencyConfig):
            config = parse_data_efficiency_config(config)
        block = config.data_sampling.curriculum_learning
        if not block.enabled:
            raise _validation.value_error(f"{block.key_path}.enabled", False,
                                          "True for a sequence-length curriculum")
        names = [name for name in block.curriculum_metrics if name in SEQLEN_MODES]
        if len(names) != 1:
            raise _validation.value_error(
                f"{block.key_path}.curriculum_metrics", list(block.curriculum_metrics),
                f"metrics with exactly one of {list(SEQLEN_MODES)}")
        scheduler = CurriculumScheduler(block.curriculum_metrics[names[0]])
        if schedule_function is not None:
            scheduler.set_custom_get_difficulty(schedule_function)
        return cls(scheduler, mode=names[0], **kwargs)

    @property
    def scheduler(self) -> CurriculumScheduler:
        """The curriculum scheduler (its state is the current difficulty)."""
        return self._scheduler

    @property
    def mode(self) -> str:
        """``"seqlen_truncate"`` or ``"seqlen_reshape"``."""
        return self._mode

    @property
    def buckets(self) -> ShapeBuckets:
        """The difficulty buckets."""
        return self._buckets

    @property
    def counter(self) -> ShapeCounter:
        """Steps per length handed on; feed it the train step's compilations."""
        return self._counter

    @property
    def last_plan(self) -> SeqlenPlan | None:
        """The plan of the last batch acted on."""
        return self._last

    @property
    def tokens(self) -> TokenCounts:
        """Tokens consumed so far (reads the pending device counts: a sync)."""
        self._read(len(self._pending))
        return self._tokens

    def _check_smallest(self) -> None:
        smallest = self._buckets.shapes[0][0]
        if smallest <= 0 or (self._unit == "tokens" and smallest < 1):
            cfg = self._scheduler.config
            raise _validation.value_error(
                "buckets", smallest, "a difficulty that gives >= 1 token",
                fix=f"{cfg.key_path}.min_difficulty {cfg.min_difficulty} rounds below 1 "
                    "(legacy_rounding=False lifts it to a multiple of difficulty_step)")

    def length(self, difficulty: int | float, seq_len: int) -> int:
        """The length of a difficulty for a batch of length ``seq_len`` (module docstring)."""
        if self._unit == "tokens":
            if not float(difficulty).is_integer():
                raise _validation.value_error("difficulty", difficulty,
                                              "a whole number of tokens (unit 'tokens')")
            length = int(difficulty)
        else:
            length = math.ceil(Fraction(difficulty) * seq_len
                               / Fraction(self._scheduler.config.max_difficulty))
        if length < 1:
            raise _validation.value_error("length", length, ">= 1 token",
                                          fix=f"difficulty {difficulty!r}")
        return min(length, seq_len)

    def plan(self, global_step: int, batch_size: int, seq_len: int, row_multiple: int = 1
             ) -> SeqlenPlan:
        """Advance the scheduler to ``global_step`` and decide the batch's length and rows."""
        step = _validation.integer("global_step", global_step, minimum=0) + self._offset
        difficulty = self._scheduler.update_difficulty(step)
        bucket = self._buckets(difficulty)
        length = self.length(bucket, seq_len)
        rows = (batch_size if self._mode == "seqlen_truncate"
                else reshaped_rows(batch_size, seq_len, length, row_multiple)[1])
        return SeqlenPlan(step, difficulty, bucket, self.length(difficulty, seq_len), length,
                          rows)

    def _mesh_for(self, batch: Mapping[str, Any]) -> Mesh:
        if self._mesh is not None:
            return self._mesh
        sharding = getattr(batch["inputs"], "sharding", None)
        if isinstance(sharding, NamedSharding) and "batch" in sharding.mesh.axis_names:
            return sharding.mesh
        return Mesh(np.asarray(jax.devices()), ("batch",))  # AlgoPerf's mesh

    def _jitted(self, length: int, row_multiple: int, mesh: Mesh) -> Callable[..., Any]:
        """The jitted op for one length and mesh (built once, kept in ``self._ops``)."""
        key = (length, row_multiple, mesh)
        if key not in self._ops:
            self._ops[key] = seqlen_op(self._mode, length, mesh=mesh, row_multiple=row_multiple)
        return self._ops[key]

    def __call__(self, batch: Any, global_step: int) -> Any:
        """The batch cut to the curriculum's length at ``global_step`` (or unchanged).

        Args:
          batch: what ``data_selection`` got from the input queue.
          global_step: AlgoPerf's step, 0 for the first batch.

        Returns:
          A new dict of arrays sharded ``P('batch')``, or ``batch`` itself when it is not
          a sequence batch or the length is the batch's own.
        """
        found = sequence_batch(batch)
        if not found.acts:
            self._passed += 1
            return batch
        size, seq_len = found.batch_size, found.seq_len
        mesh = self._mesh_for(batch)
        plan = self.plan(global_step, size, seq_len, mesh.shape["batch"])
        if plan.length >= seq_len:
            out, real = batch, count_weights(batch[WEIGHTS_KEY])
        else:
            out, real = self._jitted(plan.length, mesh.shape["batch"], mesh)(dict(batch))
        scheduled_rows = (size if self._mode == "seqlen_truncate"
                          else reshaped_rows(size, seq_len, plan.scheduled_length)[0])
        t = self._tokens
        self._tokens = t._replace(scheduled=t.scheduled + scheduled_rows * plan.scheduled_length,
                                  computed=t.computed + plan.rows * plan.length)
        self._pending.append(real)
        if len(self._pending) > _PENDING:
            self._read(len(self._pending) - 1)
        self._counter.record_step((plan.length,))
        self._last = plan
        return out

    def _read(self, count: int) -> None:
        """Add the oldest ``count`` device token counts to ``tokens.real``."""
        done, self._pending = self._pending[:count], self._pending[count:]
        if done:
            real = sum(int(n) for n in jax.device_get(done))
            self._tokens = self._tokens._replace(real=self._tokens.real + real)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable report: buckets, tokens, steps and compilations per length."""
        return {"mode": self._mode, "unit": self._unit, "step_offset": self._offset,
                "buckets": self._buckets.to_dict(), "tokens": self.tokens._asdict(),
                "passed_batches": self._passed, "lengths": self._counter.summary()}

    def state_dict(self) -> dict[str, Any]:
        """The state as JSON-serialisable data (scheduler, tokens, counts)."""
        return {"scheduler": self._scheduler.state_dict(), "tokens": self.tokens._asdict(),
                "passed_batches": self._passed, "counter": self._counter.state_dict(),
                "mode": self._mode, "unit": self._unit, "step_offset": self._offset,
                "buckets": self._buckets.to_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (checked against this configuration)."""
        mine = {"mode": self._mode, "unit": self._unit, "step_offset": self._offset,
                "buckets": self._buckets.to_dict()}
        for key, value in mine.items():
            if key in state_dict and state_dict[key] != value:
                raise _validation.value_error(
                    f"state_dict[{key!r}]", state_dict[key], f"{value!r} as configured",
                    fix="the checkpoint belongs to another curriculum configuration")
        self._scheduler.load_state_dict(state_dict["scheduler"])
        tokens = state_dict["tokens"]
        self._tokens = TokenCounts(*(_validation.integer(f"state_dict.tokens.{k}", tokens[k],
                                                         minimum=0)
                                     for k in TokenCounts._fields))
        self._pending = []
        self._passed = _validation.integer("state_dict.passed_batches",
                                           state_dict["passed_batches"], minimum=0)
        self._counter.load_state_dict(state_dict["counter"])
