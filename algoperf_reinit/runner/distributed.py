"""Several processes (hosts) through JAX's own distributed runtime.

A run on ``N`` processes starts the same command once per process with
``--coordinator_address=<host:port of process 0>``, ``--num_processes=N`` and
``--process_id=<0..N-1>`` (or the environment variables of :data:`ENV_VARS`; a
flag wins over its variable). :func:`initialize` calls
``jax.distributed.initialize`` before anything touches a device; on CPU it first
selects JAX's documented CPU collectives (``jax_cpu_collectives_implementation
= 'gloo'``), without which a computation spanning processes fails. From then on
``jax.devices()`` lists every process's devices, the ``'batch'`` mesh spans them
all, and each process feeds the rows of the global batch that live on its own
devices (``jax.make_array_from_process_local_data``).

Who writes what: process 0 alone writes the run directory — the trial lock, the
CSV files, ``summary.json``, ``flags_<p>.json``/``meta_data_<p>.json``, the
checkpoints (arrays are replicated, so process 0 holds all of them) and the
submission's own files; the other processes write nothing and print nothing but
errors. On resume every process reads the same checkpoint, so the experiment
directory must be visible to every process (one machine, or a shared file
system). Decisions taken from wall time would differ between processes, so a
multi-process run needs ``--eval_every_steps``; whether the time budget is spent
is process 0's call, shared with the others at each eval.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from algoperf_reinit import _validation as v

__all__ = ["ENV_VARS", "Distributed", "agree", "agree_int", "initialize", "is_writer", "resolve"]

ENV_VARS = {
    "coordinator_address": "ALGOPERF_REINIT_COORDINATOR",
    "num_processes": "ALGOPERF_REINIT_NUM_PROCESSES",
    "process_id": "ALGOPERF_REINIT_PROCESS_ID",
}
"""The environment variables read when the flag is not given (JAX 0.7 itself reads
only ``JAX_COORDINATOR_ADDRESS``)."""


class Distributed(NamedTuple):
    """Where this process stands in the run: ``num_processes == 1`` is a single process."""

    coordinator_address: str | None
    num_processes: int
    process_id: int


def _env_int(name: str, environ: Mapping[str, str]) -> int | None:
    text = environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise v.value_error(name, text, "an int") from None


def resolve(flags: Any, environ: Mapping[str, str] | None = None) -> Distributed:
    """The process layout from the flags, else :data:`ENV_VARS`.

    Raises:
      ValueError: for a count below 1, an id outside ``[0, N)``, a missing
        coordinator address with ``N > 1``, or an environment value that is not an int.
    """
    environ = os.environ if environ is None else environ
    address = flags.coordinator_address or environ.get(ENV_VARS["coordinator_address"]) or None
    count = flags.num_processes
    if count is None:
        count = _env_int(ENV_VARS["num_processes"], environ)
    pid = flags.process_id
    if pid is None:
        pid = _env_int(ENV_VARS["process_id"], environ)
    count = v.integer("--num_processes", 1 if count is None else count, minimum=1)
    pid = v.integer("--process_id", 0 if pid is None else pid, minimum=0, maximum=count - 1)
    if count > 1 and not address:
        raise v.value_error("--coordinator_address", address, "host:port of process 0",
                            fix=f"needed with --num_processes={count} (or set "
                                f"{ENV_VARS['coordinator_address']})")
    if count > 1 and flags.eval_every_steps is None:
        raise v.value_error("--eval_every_steps", None, "set for a multi-process run",
                            fix="evals by wall time would differ between processes")
    return Distributed(address, count, pid)


def initialize(layout: Distributed) -> None:
    """``jax.distributed.initialize`` for a multi-process layout (nothing for one process).

    Must run before anything touches a device.
    """
    if layout.num_processes == 1:
        return
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=layout.coordinator_address,
                               num_processes=layout.num_processes,
                               process_id=layout.process_id)


def is_writer() -> bool:
    """Whether this process writes the run directory (process 0)."""
    import jax

    return jax.process_index() == 0


def agree(value: bool) -> bool:
    """Process 0's ``value``, on every process (a collective with several processes)."""
    import jax

    if jax.process_count() == 1:
        return bool(value)
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(value, dtype=np.bool_)))


def agree_int(value: int) -> int:
    """Process 0's ``value`` (an int32) on every process, e.g. a seed it drew at random."""
    import jax

    if jax.process_count() == 1:
        return int(value)
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.asarray(value, dtype=np.int32)))
