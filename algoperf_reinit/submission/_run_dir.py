"""Where a run writes its schedule plot and event log.

The library never reads flags or the environment on its own; the submission file
(an entry point) passes them in: :func:`harness_run_dir` takes the harness's absl
flags and the environment and returns the ``run_dir(workload, hyperparameters, rng)``
callable that :func:`~algoperf_reinit.submission.submission_api` wants, which applies
:func:`resolve_run_dir`:

1. our runner sets ``ALGOPERF_REINIT_RUN_DIR`` (:data:`~algoperf_reinit.run_protocol.
   RUN_DIR_ENV`) to the trial directory;
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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algoperf_reinit._hyperparameters import as_mapping
from algoperf_reinit.run_protocol import RUN_DIR_ENV

__all__ = ["RUN_DIR_ENV", "harness_run_dir", "resolve_run_dir", "trial_id"]


def trial_id(workload_name: str, hyperparameters: Any, rng: Any) -> str:
    """A short id that differs between trials (hyperparameters, seed) of a workload."""
    hp = None if hyperparameters is None else as_mapping(hyperparameters)
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


def harness_run_dir(flags: Any, environ: Mapping[str, str]) -> Callable[[Any, Any, Any], pathlib.Path]:
    """The ``run_dir`` callable of a submission file, from the harness's flags and the environment.

    The flags are read when the callable is called (in ``init_optimizer_state``, when
    the harness has parsed them), never at import.

    Args:
      flags: the process's absl flags (``absl.flags.FLAGS``) or any object with
        ``__contains__``, ``is_parsed()`` and attributes; unparsed or missing flags
        count as unset.
      environ: the environment (``os.environ``), read for :data:`RUN_DIR_ENV`.

    Returns:
      ``run_dir(workload, hyperparameters, rng) -> pathlib.Path`` by the rules in the
      module docstring; the workload is named by the harness's ``--workload`` flag,
      else by its class name.

    Example:
      >>> run_dir = harness_run_dir(flags=None, environ={RUN_DIR_ENV: "runs/trial_1"})
      >>> str(run_dir(object(), None, 0))
      'runs/trial_1'
    """

    def flag(name: str) -> Any:
        try:
            parsed = flags is not None and name in flags and flags.is_parsed()
        except (TypeError, AttributeError):
            parsed = False
        return getattr(flags, name, None) if parsed else None

    def run_dir(workload: Any, hyperparameters: Any, rng: Any) -> pathlib.Path:
        name = flag("workload") or type(workload).__name__
        return resolve_run_dir(name, hyperparameters, rng, env_run_dir=environ.get(RUN_DIR_ENV),
                               experiment_dir=flag("experiment_dir"),
                               experiment_name=flag("experiment_name"))

    return run_dir
