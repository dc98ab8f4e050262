"""Ablation arms of the efficacy study: one change each to a shipped submission.

An ablation is the shipped submission's own ``CONFIG`` (read from its
``submission.py``) with one field replaced — resets off / shrink-and-perturb / full
re-init, moments kept / zeroed / rescaled, the plateau detector on / off, another
first-cycle fraction — so that it differs from the submission in exactly that.
:func:`write_arm` writes a six-line ``submission.py`` for it (and a copy of the
base's search space) under the study's output directory; the runner loads it like
any other submission. The generated file imports this module, so it runs inside
``benchmarks/efficacy.py`` (which puts ``benchmarks/`` on ``sys.path``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib
import shutil
import sys
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]

_TEMPLATE = '''"""Ablation arm {name!r} of {base} (written by benchmarks/efficacy.py; do not edit)."""
import os
import absl.flags
import _ablations
from algoperf_reinit.submission import harness_run_dir, submission_api
(get_batch_size, init_optimizer_state, update_params, prepare_for_eval, data_selection,
 run_artifacts) = submission_api(_ablations.config({name!r}), harness_run_dir(absl.flags.FLAGS, os.environ))
'''


@functools.cache
def base_config(submission: str) -> Any:
    """The ``CONFIG`` of ``submissions/<submission>/submission.py``."""
    path = ROOT / "submissions" / submission / "submission.py"
    spec = importlib.util.spec_from_file_location(f"_ablation_base_{submission}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.CONFIG


def _reinit(**changes: Any) -> Callable[[Any], Any]:
    return lambda c: dataclasses.replace(c, reinit=dataclasses.replace(c.reinit, **changes))


def _params(mode: str, **kwargs: Any) -> Callable[[Any], Any]:
    def change(c: Any) -> Any:
        from algoperf_reinit.reinit import ParamResetPolicy

        old = c.reinit.params
        return _reinit(params=ParamResetPolicy(mode, model_state=old.model_state, **kwargs))(c)
    return change


def _moments(mode: str, **kwargs: Any) -> Callable[[Any], Any]:
    def change(c: Any) -> Any:
        from algoperf_reinit.reinit import OptimizerResetPolicy

        return _reinit(optimizer=OptimizerResetPolicy(mode=mode, **kwargs))(c)
    return change


def _first_cycle(fraction: float) -> Callable[[Any], Any]:
    """The first cycle's share of the budget; the others keep their proportions."""
    def change(c: Any) -> Any:
        rest = c.schedule.cycle_fractions[1:]
        scaled = tuple(f * (1.0 - fraction) / sum(rest) for f in rest)
        return dataclasses.replace(
            c, schedule=dataclasses.replace(c.schedule, cycle_fractions=(fraction, *scaled)))
    return change


ABLATIONS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    # name: (base submission, what changes, how)
    "reinit:resets_off": ("nadamw_reinit", "parameters kept at every new cycle", _params("keep")),
    "reinit:full_reinit": ("nadamw_reinit", "parameters re-initialised at every new cycle",
                           _params("reinit")),
    "reinit:moments_keep": ("nadamw_reinit", "optimizer moments kept", _moments("keep")),
    "reinit:moments_zero": ("nadamw_reinit", "optimizer moments zeroed", _moments("zero")),
    "reinit:plateau_off": ("nadamw_reinit", "no plateau detector (cycles run to their end)",
                           _reinit(plateau=None)),
    "reinit:first_0.25": ("nadamw_reinit", "first cycle 0.25 of the budget", _first_cycle(0.25)),
    "reinit:first_0.35": ("nadamw_reinit", "first cycle 0.35 of the budget", _first_cycle(0.35)),
    "reinit:first_0.5": ("nadamw_reinit", "first cycle 0.5 of the budget", _first_cycle(0.5)),
    "reinit:first_0.65": ("nadamw_reinit", "first cycle 0.65 of the budget", _first_cycle(0.65)),
    "cycles:plateau_off": ("nadamw_cycles", "no plateau detector", _reinit(plateau=None)),
    "cycles:first_0.5": ("nadamw_cycles", "first cycle 0.5 of the budget", _first_cycle(0.5)),
    "cycles:first_0.65": ("nadamw_cycles", "first cycle 0.65 of the budget (near the "
                          "baseline's steps to target on stdlib_lm, 0.70-0.75)",
                          _first_cycle(0.65)),
}
"""Every ablation arm. The shipped ``nadamw_reinit`` is itself the shrink-and-perturb,
rescaled-moments, plateau-on arm (first cycle 0.25)."""

BASE_OF: dict[str, str] = {name: spec[0] for name, spec in ABLATIONS.items()}
"""Ablation arm → its base submission."""


def config(name: str) -> Any:
    """The ablation's ``SubmissionConfig``."""
    if name not in ABLATIONS:
        raise ValueError(f"ablation must be one of {sorted(ABLATIONS)}, got {name!r}")
    base, _, change = ABLATIONS[name]
    return dataclasses.replace(change(base_config(base)), name=name)


def write_arm(name: str, out_dir: pathlib.Path) -> tuple[str, str]:
    """Writes the arm's submission and search space; returns both paths."""
    base = ABLATIONS[name][0]
    config(name)  # fails here, not inside a trial, if the change is invalid
    folder = out_dir / "arms" / name.replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "submission.py").write_text(_TEMPLATE.format(name=name, base=base))
    shutil.copyfile(ROOT / "submissions" / base / "tuning_search_space.json",
                    folder / "tuning_search_space.json")
    return str(folder / "submission.py"), str(folder / "tuning_search_space.json")
