"""Command-line flags of the runner, named as in AlgoPerf's ``submission_runner.py``.

Flags are written ``--name=value`` or ``--name value``; booleans also as
``--name`` / ``--noname`` (absl's spelling). Without ``--workload`` and
``--submission_path`` the runner runs the *default job* (:data:`DEFAULT_JOB_ARGS`):
the digits workload with ``nadamw_reinit`` over its whole schedule, evaluated every
:data:`DEFAULT_JOB_EVAL_EVERY_STEPS` steps; other flags given with it
(``--experiment_dir``, ``--progress``, even ``--nocontinue_past_target``) still
apply on top.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
from collections.abc import Sequence
from typing import Any

from algoperf_reinit import _validation as v
from algoperf_reinit.runner.progress import MODES

__all__ = [
    "DEFAULT_JOB_ARGS",
    "DEFAULT_JOB_EVAL_EVERY_STEPS",
    "DEFAULT_SUBMISSION",
    "RunnerFlags",
    "is_default_job",
    "parse_flags",
]

DEFAULT_SUBMISSION = "submissions/nadamw_reinit/submission.py"
DEFAULT_JOB_EVAL_EVERY_STEPS = 20
DEFAULT_JOB_ARGS: tuple[str, ...] = (
    "--workload=digits",
    f"--submission_path={DEFAULT_SUBMISSION}",
    "--max_global_steps=2000",
    f"--eval_every_steps={DEFAULT_JOB_EVAL_EVERY_STEPS}",
    "--continue_past_target",
)
_RULESETS = ("external", "self")


@dataclasses.dataclass(frozen=True)
class RunnerFlags:
    """The parsed flags (see ``python -m algoperf_reinit.runner --help``)."""

    workload: str = "digits"
    submission_path: str = DEFAULT_SUBMISSION
    tuning_search_space: str | None = None
    tuning_ruleset: str = "external"
    num_tuning_trials: int = 1
    hparam_start_index: int | None = None
    hparam_end_index: int | None = None
    experiment_dir: str = "./runs"
    experiment_name: str = ""
    max_global_steps: int | None = None
    eval_every_steps: int | None = None
    continue_past_target: bool = False
    rng_seed: int = 1
    overwrite: bool = False
    resume_last_run: bool = False
    save_checkpoints: bool = True
    keep_checkpoints: int = 2
    plot_run: bool = True
    workload_kwargs: str = "{}"
    data_dir: str | None = None
    framework: str = "jax"
    progress: str = "auto"
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    @property
    def search_space_path(self) -> pathlib.Path:
        """``--tuning_search_space``, or ``tuning_search_space.json`` beside the submission."""
        if self.tuning_search_space:
            return pathlib.Path(self.tuning_search_space)
        return pathlib.Path(self.submission_path).parent / "tuning_search_space.json"

    @property
    def workload_kwargs_dict(self) -> dict[str, Any]:
        """``--workload_kwargs`` parsed (validated at parse time)."""
        return json.loads(self.workload_kwargs)

    def to_json_dict(self) -> dict[str, Any]:
        """All flag values, for ``flags_<preemption>.json``."""
        return dataclasses.asdict(self)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


INT64_MAX = 2**63 - 1
"""The largest seed: JAX's ``PRNGKey`` takes an int64."""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(v.message("the value", text, "an int")) from None


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in ("", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            v.message("the value", text, "an int or 'none'")) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # a ValueError for callers, not SystemExit
        raise ValueError(f"bad command line: {message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m algoperf_reinit.runner",
        description="Run an AlgoPerf v0.6 submission on a bundled workload and write "
                    "AlgoPerf's experiment layout. Without --workload and --submission_path: the "
                    f"default job ({' '.join(DEFAULT_JOB_ARGS)}), other flags on top.",
        allow_abbrev=False,
    )
    d = RunnerFlags()
    p.add_argument("--workload", default=d.workload, help="bundled workload: digits or stdlib_lm")
    p.add_argument("--submission_path", default=d.submission_path,
                   help="submission.py file (or a dotted module path)")
    p.add_argument("--tuning_search_space", default=None,
                   help="search space JSON (default: tuning_search_space.json beside the "
                        "submission); list-of-points or min/max/scaling dict form")
    p.add_argument("--tuning_ruleset", default=d.tuning_ruleset, choices=_RULESETS)
    p.add_argument("--num_tuning_trials", type=_int, default=d.num_tuning_trials)
    p.add_argument("--hparam_start_index", type=_optional_int, default=None)
    p.add_argument("--hparam_end_index", type=_optional_int, default=None)
    p.add_argument("--experiment_dir", default=d.experiment_dir)
    p.add_argument("--experiment_name", default="",
                   help="default: the UTC start time, e.g. 20261128T120000Z")
    p.add_argument("--max_global_steps", type=_optional_int, default=None)
    p.add_argument("--eval_every_steps", type=_optional_int, default=None,
                   help="evaluate at step 1 and every N steps instead of every "
                        "eval_period_time_sec of wall time (reproducible runs)")
    p.add_argument("--keep_checkpoints", type=_int, default=d.keep_checkpoints,
                   help="checkpoints kept per trial (the newest N); --resume_last_run falls "
                        "back to the newest intact one")
    p.add_argument("--rng_seed", type=_int, default=d.rng_seed,
                   help="0 means a random seed (printed), as in AlgoPerf")
    p.add_argument("--workload_kwargs", default=d.workload_kwargs,
                   help='JSON object of workload constructor arguments, e.g. \'{"seq_len": 64}\'')
    p.add_argument("--data_dir", default=None, help="ignored: bundled data ships with packages")
    p.add_argument("--framework", default=d.framework, choices=("jax",))
    p.add_argument("--progress", default=d.progress, choices=MODES,
                   help="auto: a bar on a terminal, plain lines otherwise")
    p.add_argument("--coordinator_address", default=None,
                   help="host:port of process 0 for a multi-process run "
                        "(env ALGOPERF_REINIT_COORDINATOR)")
    p.add_argument("--num_processes", type=_optional_int, default=None,
                   help="processes of a multi-process run (env ALGOPERF_REINIT_NUM_PROCESSES; "
                        "default 1)")
    p.add_argument("--process_id", type=_optional_int, default=None,
                   help="this process's index, 0 .. num_processes-1 "
                        "(env ALGOPERF_REINIT_PROCESS_ID)")
    for name, default, help_text in (
        ("continue_past_target", d.continue_past_target,
         "keep training after the validation and test targets are met"),
        ("overwrite", d.overwrite, "delete an existing <experiment_dir>/<name>/<workload>_jax"),
        ("resume_last_run", d.resume_last_run, "continue from the trials' last checkpoints"),
        ("save_checkpoints", d.save_checkpoints, "checkpoint at every eval and at the end"),
        ("plot_run", d.plot_run, "draw run_metrics.png (validation metric, training loss, "
         "learning rate, events) at the end of each trial"),
    ):
        p.add_argument(f"--{name}", nargs="?", const=True, default=default, type=_bool,
                       metavar="BOOL", help=help_text)
        p.add_argument(f"--no{name}", dest=name, action="store_false", help=argparse.SUPPRESS)
    return p


def _check(flags: RunnerFlags) -> None:
    for name in ("num_tuning_trials", "max_global_steps", "eval_every_steps",
                 "keep_checkpoints"):
        value = getattr(flags, name)
        if name in ("num_tuning_trials", "keep_checkpoints") or value is not None:
            v.integer(f"--{name}", value, minimum=1)
    v.integer("--rng_seed", flags.rng_seed, minimum=0, maximum=INT64_MAX,
              fix="0 draws a random seed; JAX's PRNGKey takes an int64")
    if flags.overwrite and flags.resume_last_run:
        raise ValueError("--overwrite and --resume_last_run exclude each other: one deletes "
                         "the run directory, the other continues it")
    try:
        kwargs = json.loads(flags.workload_kwargs)
    except json.JSONDecodeError as e:
        raise v.value_error("--workload_kwargs", flags.workload_kwargs, "a JSON object",
                            fix=e.msg) from None
    if not isinstance(kwargs, dict):
        raise v.value_error("--workload_kwargs", flags.workload_kwargs, "a JSON object")
    v.optional(v.integer, "--num_processes", flags.num_processes, minimum=1)
    for name in ("hparam_start_index", "hparam_end_index", "process_id"):
        v.optional(v.integer, f"--{name}", getattr(flags, name), minimum=0)
    if not flags.experiment_name or "/" in flags.experiment_name or flags.experiment_name in (
            ".", ".."):
        raise v.value_error("--experiment_name", flags.experiment_name,
                            "a plain directory name")


def is_default_job(argv: Sequence[str]) -> bool:
    """Whether ``argv`` names neither a workload nor a submission (the default job)."""
    names = ("--workload", "--submission_path")
    return not any(a == n or a.startswith(n + "=") for a in argv for n in names)


def parse_flags(argv: Sequence[str], *, now: datetime.datetime | None = None) -> RunnerFlags:
    """Parses the runner's flags (``argv`` without the program name).

    Without ``--workload`` and ``--submission_path`` in ``argv`` the default job's
    flags (:data:`DEFAULT_JOB_ARGS`) come first, so the given flags override them.

    Raises:
      ValueError: for unknown flags or invalid values (the message names the flag).
    """
    argv = list(argv)
    if is_default_job(argv):
        argv = [*DEFAULT_JOB_ARGS, *argv]
    namespace = _parser().parse_args(argv)
    values = vars(namespace)
    if not values["experiment_name"]:
        now = now or datetime.datetime.now(datetime.UTC)
        values["experiment_name"] = now.strftime("%Y%m%dT%H%M%SZ")
    flags = RunnerFlags(**values)
    _check(flags)
    return flags
