"""Counting XLA compilations from JAX's own monitoring events.

JAX reports every backend compilation through ``jax.monitoring`` as a duration
event named ``/jax/core/compile/backend_compile_duration`` (the same key in jax
0.7.0 and 0.10.x; it is ``jax._src.dispatch.BACKEND_COMPILE_EVENT``), with the
compiled function's name (``fun_name='jit(train_step)'``) as metadata. The event
fires once per executable JAX builds: a jitted function on a cache miss (new
shapes, dtypes, shardings or static arguments), and also each small eager op the
first time it runs with new shapes (``jit(add)``, ``jit(broadcast_in_dim)``, ...).
It also fires when an executable is loaded from the persistent compilation cache
(off by default). Cache hits of already-compiled functions do not fire it.

:class:`CompileCounter` sorts the events by the runner's phase:

* ``warmup``: the timed section of the first step of this process (data
  selection + ``update_params`` + the ``prepare_for_eval`` before the first eval):
  the train step's first compile belongs here;
* ``timed_after_warmup``: every later timed section — compiles on the clock that
  a well-behaved submission does not have (ideally 0: each one is a recompile);
* ``untimed``: initialisation, evaluation and checkpointing.

Besides, every counter keeps :attr:`CompileCounter.stages`: each event of the
three stages of a compile (tracing to a jaxpr, lowering to an MLIR module, the
backend compile; :data:`COMPILE_STAGE_EVENTS`) with its function name and seconds,
for reports of where compile time goes (the benchmarks use it). The function is
named differently per stage (``train_step``, ``jit_train_step``,
``jit(train_step)``).

One process-wide listener is registered on first use (JAX 0.7 has no public way
to unregister one) and forwards events to the counters that are active.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import jax

__all__ = [
    "BACKEND_COMPILE_EVENT",
    "COMPILE_STAGE_EVENTS",
    "JAXPR_TO_MLIR_MODULE_EVENT",
    "JAXPR_TRACE_EVENT",
    "CompileCounter",
]

try:  # the constants JAX itself uses; the literals are their values in jax 0.7.0 .. 0.10.x
    from jax._src.dispatch import (
        BACKEND_COMPILE_EVENT,
        JAXPR_TO_MLIR_MODULE_EVENT,
        JAXPR_TRACE_EVENT,
    )
except ImportError:  # pragma: no cover - private module moved
    BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
    JAXPR_TO_MLIR_MODULE_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
    JAXPR_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"

COMPILE_STAGE_EVENTS = (JAXPR_TRACE_EVENT, JAXPR_TO_MLIR_MODULE_EVENT, BACKEND_COMPILE_EVENT)
"""The duration events of the stages of one compile, in the order they happen."""

_PHASES = ("untimed", "warmup", "timed_after_warmup")
_lock = threading.Lock()
_active: list[CompileCounter] = []  # counters inside their `with` block


def _listener(event: str, duration_secs: float, **kwargs: Any) -> None:
    if event not in COMPILE_STAGE_EVENTS:
        return
    with _lock:
        counters = list(_active)
    name, seconds = str(kwargs.get("fun_name", "?")), float(duration_secs)
    for counter in counters:
        counter.stages.append((event, name, seconds))
        if event == BACKEND_COMPILE_EVENT:
            counter.record(name, seconds)


@functools.cache
def _ensure_registered() -> None:
    """Registers the one listener of this process (JAX's registry is process-wide)."""
    jax.monitoring.register_event_duration_secs_listener(_listener)


class CompileCounter:
    """Counts backend compilations while active, by phase (see the module docstring).

    Example:
      >>> with CompileCounter() as counter:
      ...     with counter.timed(warmup=True):
      ...         pass  # the first step
      >>> counter.summary()["timed_after_warmup"]
      0
    """

    def __init__(self) -> None:
        self.phase = "untimed"
        self.events: list[tuple[str, str, float]] = []  # (phase, fun_name, seconds)
        self.stages: list[tuple[str, str, float]] = []  # (event, fun_name, seconds)

    def __enter__(self) -> CompileCounter:
        _ensure_registered()
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            if self in _active:
                _active.remove(self)

    def record(self, fun_name: str, seconds: float) -> None:
        """Records one compilation in the current phase."""
        self.events.append((self.phase, fun_name, seconds))

    @contextlib.contextmanager
    def timed(self, *, warmup: bool) -> Iterator[None]:
        """Marks a timed section (``warmup`` for the process's first step)."""
        previous = self.phase
        self.phase = "warmup" if warmup else "timed_after_warmup"
        try:
            yield
        finally:
            self.phase = previous

    def summary(self) -> dict[str, Any]:
        """Counts per phase, timed compile seconds (all timed; after warm-up) and the
        functions compiled after warm-up with their counts."""
        counts = collections.Counter(phase for phase, _, _ in self.events)
        late = collections.Counter(name for phase, name, _ in self.events
                                   if phase == "timed_after_warmup")
        return {
            "event": BACKEND_COMPILE_EVENT,
            "total": len(self.events),
            **{phase: counts.get(phase, 0) for phase in _PHASES},
            "timed_seconds": sum(s for phase, _, s in self.events if phase != "untimed"),
            "timed_after_warmup_seconds": sum(s for phase, _, s in self.events
                                              if phase == "timed_after_warmup"),
            "functions_after_warmup": dict(sorted(late.items())),
        }
