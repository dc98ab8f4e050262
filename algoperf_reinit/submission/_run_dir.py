"""Where a run writes its schedule plot and event log.

The library never reads flags or the environment on its own; the submission file
(an entry point) calls :func:`resolve_run_dir` with what it found:

1. our runner sets ``ALGOPERF_REINIT_RUN_DIR`` to the trial directory;
2. under the real AlgoPerf harness, the harness's ``--experiment_dir`` and
   ``--experiment_name`` flags: the run writes into
   ``<experiment_dir>/<experiment_name>/<workload>_jax/algoperf_reinit/<trial id>``,
   where the trial id hashes the hyperparameters and the rng, so trials and studies
   never overwrite each other;
3. otherwise ``./algoperf_reinit_runs/<workload>/<trial id>`` in the working directory.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import numpy as np

RUN_DIR_ENV = "ALGOPERF_REINIT_RUN_DIR"


def trial_id(workload_name: str, hyperparameters: Any, rng: Any) -> str:
    """A short id that differs between trials (hyperparameters, seed) of a workload."""
    if hyperparameters is None:
        hp = None
    elif hasattr(hyperparameters, "_asdict"):
        hp = hyperparameters._asdict()
    else:
        hp = dict(hyperparameters)
    payload = json.dumps({"workload": workload_name, "hp": hp,
                          "rng": np.asarray(rng).tolist()}, sort_keys=True, default=str)
    return "trial_" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def resolve_run_dir(
    workload_name: str,
    hyperparameters: Any,
    rng: Any,
    *,
    env_run_dir: str | None = None,
    experiment_dir: str | None = None,
    experiment_name: str | None = None,
    cwd: str | pathlib.Path = ".",
) -> pathlib.Path:
    """The run directory by the rules in the module docstring.

    Args:
      workload_name: e.g. ``"digits"`` or ``"wmt"``.
      hyperparameters: the run's hyperparameters (namedtuple, mapping or None).
      rng: the key passed to ``init_optimizer_state``.
      env_run_dir: value of ``ALGOPERF_REINIT_RUN_DIR`` if set.
      experiment_dir: the harness's ``--experiment_dir`` if defined.
      experiment_name: the harness's ``--experiment_name`` if defined.
      cwd: base of the fallback directory.

    Returns:
      The directory (not created here).
    """
    if env_run_dir:
        return pathlib.Path(env_run_dir)
    tid = trial_id(workload_name, hyperparameters, rng)
    if experiment_dir:
        base = pathlib.Path(experiment_dir) / (experiment_name or "")
        return base / f"{workload_name}_jax" / "algoperf_reinit" / tid
    return pathlib.Path(cwd) / "algoperf_reinit_runs" / workload_name / tid
