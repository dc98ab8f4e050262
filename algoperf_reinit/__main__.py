"""Draws a showcase multi-cycle learning-rate schedule: ``python -m algoperf_reinit``.

The schedule is built with :func:`~algoperf_reinit.schedules.jax_lr_schedule` the
way a submission would build it: a short first cycle, then cycles whose peaks and
warmups are altered in the seed design's style. The command writes the plot to a
PNG file and prints the cycle table and the file's path.

Example:
  python -m algoperf_reinit --output runs/lr_schedule.png --num_cycles 4
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence

from algoperf_reinit import _validation
from algoperf_reinit.plotting import PlotEvent, describe_table, plot_schedule
from algoperf_reinit.schedules import ScheduleConfig, jax_lr_schedule

__all__ = ["DEFAULT_OUTPUT", "main", "showcase_config"]

DEFAULT_OUTPUT = "runs/lr_schedule.png"
# Per-cycle alterations, repeated when there are more cycles: the peak moves by this
# fraction of the learning rate (0, +25 %, -25 %), the warmup fraction by these amounts.
_ALTER_LR_PATTERN = (0.0, 0.25, -0.25)
_ALTER_WARMUP_PATTERN = (0.0, 0.02, 0.0)


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m algoperf_reinit",
        description="Draw a showcase multi-cycle learning-rate schedule to a PNG file and "
        "print its cycle table.",
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="PNG file to write, relative to the current directory "
                        "(default: %(default)s)")
    parser.add_argument("--step_hint", type=int, default=10_000,
                        help="budget in steps (default: %(default)s)")
    parser.add_argument("--learning_rate", type=float, default=2e-3,
                        help="base peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup_factor", type=float, default=0.05,
                        help="base warmup fraction of each cycle (default: %(default)s)")
    parser.add_argument("--num_cycles", type=int, default=3,
                        help="number of cycles (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
      argv: arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
      The exit status, 0 on success. Bad arguments exit with status 2 and a usage
      message (``SystemExit``), as argparse does.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    hyperparameters = {"learning_rate": args.learning_rate, "warmup_factor": args.warmup_factor}
    try:
        config = showcase_config(args.learning_rate, args.num_cycles)
        schedule, _, reinit_steps = jax_lr_schedule(args.step_hint, hyperparameters, config)
        title = (
            f"jax_lr_schedule: {schedule.num_cycles} cycles, step_hint {args.step_hint:,}, "
            f"lr {args.learning_rate:g}, warmup_factor {args.warmup_factor:g}"
        )
        path = plot_schedule(
            schedule,
            args.output,
            budget=args.step_hint,
            title=title,
            events=[PlotEvent(step, "reinit") for step in reinit_steps],
        )
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    print(describe_table(schedule))
    print(f"wrote {pathlib.Path(path).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
