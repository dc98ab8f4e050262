"""The schedule CLI: ``python -m algoperf_reinit`` draws a learning-rate schedule.

Three sources, one PNG (and the cycle table printed):

* **Any** :class:`~algoperf_reinit.schedules.ScheduleConfig`: ``--config FILE``, a
  JSON object of its fields (the seed design's ``schedule_params`` names work too),
  and/or one flag per field (``--num_cycles 4 --alter_lr 0,5e-4,-5e-4
  --decay_shapes cosine``), flags overriding the file. Per-cycle fields take a
  scalar, comma-separated values or a JSON list. A shape is a name or, with its
  parameters, a JSON object of :class:`~algoperf_reinit.schedules.Warmup` /
  :class:`~algoperf_reinit.schedules.Decay` fields (``{"kind": "wsd",
  "decay_fraction": 0.3}``). The table is built by
  :func:`~algoperf_reinit.schedules.jax_lr_schedule` from ``--step_hint``,
  ``--learning_rate`` and ``--warmup_factor`` as a submission would build it.
* **The showcase** when neither ``--config`` nor a field flag is given: a short
  first cycle, then cycles whose peaks and warmups are altered in the seed design's
  style (:func:`showcase_config`), with its re-init steps marked.
* **A run**: ``--run_dir TRIAL_DIR`` draws the schedule a trial applied, read from
  its files (``schedule_history.json``, ``events.csv``, the newest checkpoint,
  ``summary.json``): the tables before each early stop, every event, where training
  stopped.

Bad input ends with ``error: <field> must be <rule>, got <value>`` (exit status 2).

Example:
  python -m algoperf_reinit --output runs/lr.png --num_cycles 4 --cycle_mul 2
  python -m algoperf_reinit --config schedule.json --step_hint 20000
  python -m algoperf_reinit --run_dir runs/20261128T120000Z/digits_jax/trial_1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import types
from collections.abc import Mapping, Sequence
from typing import Any

from algoperf_reinit import _validation
from algoperf_reinit._plot_inputs import PlotEvent
from algoperf_reinit.schedules import CLOCKS, Decay, ScheduleConfig, Warmup, jax_lr_schedule

__all__ = ["DEFAULT_OUTPUT", "FIELD_FLAGS", "main", "schedule_fields", "showcase_config"]

DEFAULT_OUTPUT = "runs/lr_schedule.png"
# Per-cycle alterations, repeated when there are more cycles: the peak moves by this
# fraction of the learning rate (0, +25 %, -25 %), the warmup fraction by these amounts.
_ALTER_LR_PATTERN = (0.0, 0.25, -0.25)
_ALTER_WARMUP_PATTERN = (0.0, 0.02, 0.0)

# What the flag of each ScheduleConfig field takes.
_INT, _FLOAT = "an integer", "a number"
_FLOATS = "a number, comma-separated numbers or a JSON list of numbers"
_NAMES = ("a shape name, comma-separated names, or a JSON shape object or list of names "
          "and objects")
_CLOCK = "a clock: " + ", ".join(CLOCKS)

FIELD_FLAGS: Mapping[str, str] = types.MappingProxyType({
    "num_cycles": _INT, "cycle_lengths": _FLOATS, "cycle_fractions": _FLOATS,
    "cycle_mul": _FLOAT, "cycle_decay": _FLOAT, "cycle_limit": _INT,
    "warmup_shapes": _NAMES, "decay_shapes": _NAMES, "alter_lr": _FLOATS,
    "alter_warmup": _FLOATS, "lr_scales": _FLOATS, "warmup_scales": _FLOATS,
    "init_value": _FLOATS, "end_value": _FLOATS, "end_factor": _FLOAT, "clock": _CLOCK,
})
"""What the flag of each :class:`ScheduleConfig` field takes."""


def showcase_config(learning_rate: float, num_cycles: int) -> ScheduleConfig:
    """The showcase multi-cycle configuration.

    The first cycle is half as long as the others (an asymmetric short first
    cycle); cycle ``i`` alters the peak by ``learning_rate * (0, 0.25, -0.25)[i % 3]``
    and the warmup fraction by ``(0, 0.02, 0)[i % 3]``.

    Args:
      learning_rate: base peak; the alterations are relative to it.
      num_cycles: number of cycles (>= 1).

    Returns:
      The configuration.

    Raises:
      TypeError: if ``num_cycles`` is not an int.
      ValueError: if it is below 1.
    """
    num_cycles = _validation.integer("num_cycles", num_cycles, minimum=1)
    weights = [0.5] + [1.0] * (num_cycles - 1) if num_cycles > 1 else [1.0]
    total = sum(weights)
    return ScheduleConfig(
        cycle_fractions=tuple(w / total for w in weights),
        alter_lr=tuple(
            learning_rate * _ALTER_LR_PATTERN[i % len(_ALTER_LR_PATTERN)]
            for i in range(num_cycles)
        ),
        alter_warmup=tuple(
            _ALTER_WARMUP_PATTERN[i % len(_ALTER_WARMUP_PATTERN)] for i in range(num_cycles)
        ),
    )


def _field_value(field: str, text: str) -> Any:
    """The value of ``--<field> text``: a scalar, comma-separated values or a JSON list.

    One comma-separated value is a scalar (the same for every cycle); a JSON list, and
    the cycle lengths and fractions, stay sequences.
    """
    kind = FIELD_FLAGS[field]
    if kind == _CLOCK:
        return text  # ScheduleConfig checks it
    try:
        if kind in (_INT, _FLOAT):
            return int(text) if kind == _INT else float(text)
        as_json = text.lstrip().startswith(("[", "{"))
        items = json.loads(text) if as_json else text.split(",")
        if kind == _NAMES and isinstance(items, dict):
            return items  # one shape object, for every cycle
        if not isinstance(items, list):
            raise ValueError(text)
        if kind == _NAMES:
            values = [item if isinstance(item, dict) else str(item).strip() for item in items]
        else:
            values = [float(item) for item in items]
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValueError(f"--{field} must be {kind}, got {text!r}") from None
    if len(values) == 1 and not as_json and field not in ("cycle_lengths", "cycle_fractions"):
        return values[0]
    return tuple(values)


_SHAPE_KEYS = {"warmup_shapes": Warmup, "warmup_schedule_fns": Warmup,
               "decay_shapes": Decay, "decay_schedule_fns": Decay}


def _shape(key: str, spec: Any, field: str) -> Any:
    """A JSON shape object (``{"kind": "wsd", "decay_fraction": 0.3}``) as its shape."""
    if not isinstance(spec, dict):
        return spec
    cls = _SHAPE_KEYS[key]
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(spec) - set(names))
    if unknown or "kind" not in spec:
        raise ValueError(f"{field} must be a shape name or an object of {cls.__name__} fields "
                         f"{names} with a 'kind', got {spec!r}")
    try:
        return cls(**spec)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{field}: {err}") from None


def _with_shapes(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the shape objects of its shape keys built (names stay names)."""
    out = dict(fields)
    for key in _SHAPE_KEYS.keys() & out.keys():
        value = out[key]
        if isinstance(value, list | tuple):
            out[key] = tuple(_shape(key, v, f"{key}[{i}]") for i, v in enumerate(value))
        else:
            out[key] = _shape(key, value, key)
    return out


def schedule_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ScheduleConfig fields given by ``--config`` and the field flags (flags win).

    Args:
      args: the parsed command line.

    Returns:
      The fields (``{}`` when neither is given).

    Raises:
      ValueError: for an unreadable ``--config`` file or a malformed flag value.
    """
    fields: dict[str, Any] = {}
    if args.config is not None:
        path = pathlib.Path(args.config)
        if not path.is_file():
            raise ValueError(f"--config must be an existing JSON file, got {args.config!r}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"--config must be a JSON file, got {args.config!r} ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"--config must hold a JSON object of ScheduleConfig fields, got "
                             f"a {type(data).__name__} in {args.config!r}")
        fields.update(data)
    for field in FIELD_FLAGS:
        text = getattr(args, field)
        if text is not None:
            fields[field] = _field_value(field, text)
    return fields


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m algoperf_reinit",
        description="Draw a learning-rate schedule to a PNG file and print its cycle table: "
        "any ScheduleConfig (--config and/or a flag per field), the showcase (neither given) "
        "or the schedule a run applied (--run_dir).",
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="PNG file to write, relative to the current directory "
                        "(default: %(default)s)")
    parser.add_argument("--run_dir", help="a trial directory of a run: draw its schedule")
    parser.add_argument("--config", help="JSON file: an object of ScheduleConfig fields")
    parser.add_argument("--step_hint", type=_number, default=10_000,
                        help="budget in clock units (steps; seconds on the seconds clock) "
                        "(default: %(default)s)")
    parser.add_argument("--learning_rate", type=float, default=2e-3,
                        help="base peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup_factor", type=float, default=0.05,
                        help="base warmup fraction of each cycle (default: %(default)s)")
    parser.add_argument("--title", help="plot title (default: one stating the schedule)")
    fields = parser.add_argument_group(
        "ScheduleConfig fields", "one flag per field (see ScheduleConfig); they override "
        "--config; per-cycle fields take a scalar, comma-separated values or a JSON list")
    for field, kind in FIELD_FLAGS.items():  # every field, and fields only (tested)
        fields.add_argument(f"--{field}", metavar="VALUE", help=kind)
    return parser


def _from_config(args: argparse.Namespace, fields: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The table of the fields (or the showcase) and the plot's keyword arguments."""
    hyperparameters = {"learning_rate": args.learning_rate, "warmup_factor": args.warmup_factor}
    if fields:
        config = ScheduleConfig.from_dict(_with_shapes(fields))
        schedule = jax_lr_schedule(args.step_hint, hyperparameters, config).schedule
        return schedule, dict(budget=args.step_hint, title=args.title)
    config = showcase_config(args.learning_rate, 3)
    schedule, _, reinit_steps = jax_lr_schedule(args.step_hint, hyperparameters, config)
    title = args.title or (
        f"jax_lr_schedule: {schedule.num_cycles} cycles, step_hint {args.step_hint:,}, "
        f"lr {args.learning_rate:g}, warmup_factor {args.warmup_factor:g}")
    return schedule, dict(budget=args.step_hint, title=title,
                          events=[PlotEvent(step, "reinit") for step in reinit_steps])


def _from_run(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The table a run applied last and the plot's keyword arguments (its record)."""
    from algoperf_reinit._plot_run import HISTORY_FILE, read_run

    run_dir = pathlib.Path(args.run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"--run_dir must be an existing trial directory, got {args.run_dir!r}")
    trials = sorted(p for pattern in ("trial_*", "*/trial_*") for p in run_dir.glob(pattern)
                    if p.is_dir())
    record = read_run(run_dir)
    if record.table is None:
        hint = (f"; it holds trial directories: give one, e.g. {str(trials[0])!r}"
                if trials else "; run with --save_checkpoints (the runner's default) to keep it")
        raise ValueError(
            f"--run_dir must hold the run's cycle table (a checkpoint_<step>.msgpack or a "
            f"'current' entry in {HISTORY_FILE}), got {args.run_dir!r} with neither{hint}")
    stops = len(record.history)
    title = args.title or (f"{'/'.join(run_dir.resolve().parts[-3:])}: the schedule as run, "
                           f"{stops} early stop{'' if stops == 1 else 's'} applied")
    return record.table, dict(title=title, events=record.events, history=record.history,
                              stopped_at=record.stopped_at)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
      argv: arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
      The exit status, 0 on success. Bad arguments exit with status 2 and a usage
      message naming the field, the value and the rule (``SystemExit``), as
      argparse does.
    """
    from algoperf_reinit.plotting import describe_table, plot_schedule

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        fields = schedule_fields(args)
        if args.run_dir is not None:
            if fields:
                raise ValueError(f"--run_dir draws the run's own schedule: give it without "
                                 f"--config and field flags, got {sorted(fields)}")
            table, kwargs = _from_run(args)
        else:
            table, kwargs = _from_config(args, fields)
        path = plot_schedule(table, args.output, **kwargs)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    print(describe_table(table))
    print(f"wrote {pathlib.Path(path).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
