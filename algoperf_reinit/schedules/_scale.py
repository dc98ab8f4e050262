"""An optax transformation that scales updates by a cycle table held in its state.

``optax.scale_by_schedule(schedule)`` closes over the schedule: inside a jitted
train step the schedule's numbers become constants, so a new schedule means a new
transformation and a recompiled step. :func:`scale_by_cycle_table` keeps the
:class:`CycleTable` in the optimizer state instead. Replacing the table (new
boundaries after an early stop, new peaks) is then a change of data:
:func:`replace_table` swaps it in, and the same compiled step keeps running.

The table is read at the transformation's own step counter (``steps`` clock) or at
a time the host writes into the state with :func:`set_clock_time` (``seconds``
clock, e.g. AlgoPerf's accumulated submission time; ``layer_tokens`` clock, the layer
tokens random-LTD really computed, ``data_efficiency.layer_token_lr_table``). The counter is called
``step`` (not ``count``) so that optimizer-state resets that clear step counts
leave the schedule's position alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf_reinit import _validation
from algoperf_reinit.schedules._table import CycleTable, check_clock, cycle_index

__all__ = [
    "CycleScheduleState",
    "current_cycle",
    "current_learning_rate",
    "replace_table",
    "scale_by_cycle_table",
    "schedule_state",
    "set_clock_time",
]


class CycleScheduleState(NamedTuple):
    """State of :func:`scale_by_cycle_table`."""

    step: jax.Array  # shape=(), dtype=int32; updates applied so far (saturating)
    time: jax.Array  # shape=(), dtype=float32; clock value for the seconds clock
    table: CycleTable


def _is_schedule_state(node: Any) -> bool:
    return isinstance(node, CycleScheduleState)


def scale_by_cycle_table(table: CycleTable, clock: str = "steps") -> optax.GradientTransformation:
    """Multiplies updates by ``-table(position)``, with the table kept in the state.

    Args:
      table: the initial cycle table. Later tables must have the same capacity
        (pad with ``capacity=`` when building it) to reuse the compiled step.
      clock: ``"steps"`` (position = number of updates applied), ``"seconds"`` or
        ``"layer_tokens"`` (position = the value last written with :func:`set_clock_time`).

    Returns:
      The transformation. Chain it after a direction such as
      ``algoperf_reinit.optim.nadamw_direction``.

    Raises:
      TypeError: if ``table`` is not a CycleTable.
      ValueError: for an unknown clock.

    Example:
      >>> import optax
      >>> from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table
      >>> table = build_cycle_table(ScheduleConfig(num_cycles=2), 100, 1e-3, 0.1)
      >>> tx = optax.chain(optax.scale_by_adam(), scale_by_cycle_table(table))
    """
    if not isinstance(table, CycleTable):
        raise _validation.type_error("table", table, "a CycleTable")
    check_clock(clock)

    def init_fn(params):
        del params
        return CycleScheduleState(
            step=jnp.zeros([], jnp.int32),
            time=jnp.zeros([], jnp.float32),
            # A copy: the train step donates its state, so it must own these buffers.
            table=jax.tree.map(jnp.array, table),
        )

    def update_fn(updates, state, params=None):
        del params
        position = state.step if clock == "steps" else state.time
        lr = state.table(position)
        updates = jax.tree.map(lambda u: (-lr * u).astype(u.dtype), updates)
        return updates, state._replace(step=optax.safe_int32_increment(state.step))

    return optax.GradientTransformation(init_fn, update_fn)


def _schedule_states(opt_state: Any) -> list[CycleScheduleState]:
    leaves = jax.tree.leaves(opt_state, is_leaf=_is_schedule_state)
    return [leaf for leaf in leaves if _is_schedule_state(leaf)]


def schedule_state(opt_state: Any) -> CycleScheduleState:
    """The (first) :class:`CycleScheduleState` inside an optimizer state.

    Args:
      opt_state: any optax state that contains a ``scale_by_cycle_table`` state.

    Returns:
      That state.

    Raises:
      ValueError: if there is none.
    """
    states = _schedule_states(opt_state)
    if not states:
        raise ValueError(
            "opt_state holds no CycleScheduleState; build the optimizer with "
            "scale_by_cycle_table (e.g. algoperf_reinit.optim.nadamw(table), which holds a "
            "CycleTable learning rate in its state)"
        )
    return states[0]


def _map_schedule_states(fn, opt_state: Any) -> Any:
    schedule_state(opt_state)  # raises when there is none
    return jax.tree.map(
        lambda node: fn(node) if _is_schedule_state(node) else node,
        opt_state,
        is_leaf=_is_schedule_state,
    )


def replace_table(opt_state: Any, table: CycleTable) -> Any:
    """Returns ``opt_state`` with every cycle table replaced by ``table``.

    The step counter and time are kept. Shapes and dtypes must match the old table
    so that a jitted step that takes the state as an argument does not recompile.

    Args:
      opt_state: an optimizer state holding a ``scale_by_cycle_table`` state.
      table: the new table.

    Returns:
      The new state (same tree structure, shapes and dtypes).

    Raises:
      TypeError: if ``table`` is not a CycleTable.
      ValueError: if there is no schedule state, or the new table's capacity or
        dtypes differ from the old one's.
    """
    if not isinstance(table, CycleTable):
        raise _validation.type_error("table", table, "a CycleTable")

    def swap(state: CycleScheduleState) -> CycleScheduleState:
        for name, old, new in zip(CycleTable._fields, state.table, table, strict=True):
            if jnp.shape(old) != jnp.shape(new) or jnp.result_type(old) != jnp.result_type(new):
                raise ValueError(
                    f"the new table's {name} has shape {jnp.shape(new)} and dtype "
                    f"{jnp.result_type(new)}, the old one {jnp.shape(old)} and "
                    f"{jnp.result_type(old)}; build it with capacity={state.table.capacity} "
                    "so the compiled step can be reused"
                )
        # A copy: the train step donates its state, so it must own these buffers. Host
        # numpy then device_put: no op is compiled (jnp.array compiles jit(stage) in jax >= 0.8).
        # Each leaf goes where the old one was (e.g. replicated on the run's mesh): a jitted
        # function that takes the state (a reset) must see the same input type again.
        return state._replace(table=table._make(
            _placed_like(np.array(new), old) for new, old in zip(table, state.table, strict=True)))

    return _map_schedule_states(swap, opt_state)


def _placed_like(value: np.ndarray, old: Any) -> jax.Array:
    """``value`` on the devices: on ``old``'s mesh when ``old`` was placed on one (a run's
    replicated state), else on the default device, uncommitted, as before."""
    sharding = getattr(old, "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.device_put(value, sharding)
    return jax.device_put(value)


def set_clock_time(opt_state: Any, seconds: float) -> Any:
    """Writes the current time into every schedule state (for the seconds clock).

    Args:
      opt_state: an optimizer state holding a ``scale_by_cycle_table`` state.
      seconds: the clock value, e.g. AlgoPerf's ``accumulated_submission_time``.

    Returns:
      The new state.
    """
    time = jnp.asarray(seconds, jnp.float32)
    return _map_schedule_states(lambda s: s._replace(time=time), opt_state)


def current_learning_rate(opt_state: Any, clock: str = "steps") -> float:
    """The learning rate the next update will use (host-side, for logging).

    Args:
      opt_state: an optimizer state holding a ``scale_by_cycle_table`` state.
      clock: the clock the transformation was built with.

    Returns:
      The value as a Python float.
    """
    state = schedule_state(opt_state)
    return float(state.table(state.step if clock == "steps" else state.time))


def current_cycle(opt_state: Any, clock: str = "steps") -> int:
    """Index of the cycle the next update falls in (host-side, for logging).

    Args:
      opt_state: an optimizer state holding a ``scale_by_cycle_table`` state.
      clock: the clock the transformation was built with.

    Returns:
      The cycle index.
    """
    state = schedule_state(opt_state)
    return int(cycle_index(state.table, state.step if clock == "steps" else state.time))
