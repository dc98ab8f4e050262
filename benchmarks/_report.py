"""What every benchmark prints the same way: the header, compile counts and tables.

A benchmark script imports this module (``import _report``: the script's own
directory is first on ``sys.path``) and prints

* :func:`header`: the exact command line, then one ``#`` line with the date, the
  library versions, the machine (backend, cores, load average) and the mode;
* its own measurements, as markdown tables (:func:`table`);
* :func:`footer`: the total time and the load average at the end.

Compilations are counted from JAX's monitoring events through the runner's
:class:`~algoperf_reinit.runner.compilations.CompileCounter` (one process-wide
listener, however many counters): :class:`CompileLog` adds marks and per-function
totals over the three stages of a compile (trace, lowering, backend compile).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any, NamedTuple

from algoperf_reinit.runner.compilations import BACKEND_COMPILE_EVENT, CompileCounter

__all__ = ["PACKAGES", "CompileLog", "command_line", "footer", "header", "load_average",
           "quick_or_full", "table", "versions"]

PACKAGES = ("jax", "jaxlib", "optax", "flax", "numpy")
"""The packages whose versions the header names."""


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The command as typed: ``sys.argv`` after the interpreter, or ``script argv``."""
    if argv is None:
        return shlex.join([sys.executable, *sys.argv])
    return shlex.join([script, *argv])


def load_average(when: str) -> str:
    """``', load average 0.53 at start'`` (empty where the OS has none)."""
    try:
        return f", load average {os.getloadavg()[0]:.2f} {when}"
    except (AttributeError, OSError):
        return ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def versions(packages: Sequence[str] = PACKAGES) -> str:
    """Python and package versions, the JAX backend and the machine, one line."""
    import jax

    names = ", ".join(f"{name} {_version(name)}" for name in packages)
    return (f"python {platform.python_version()}, {names}; backend {jax.default_backend()}, "
            f"{os.cpu_count()} CPU cores, {platform.machine()} {platform.system()}")


def header(script: str, argv: Sequence[str] | None, *, mode: str,
           packages: Sequence[str] = PACKAGES) -> list[str]:
    """The first two lines of a report: the command, then date, versions, load and mode."""
    now = datetime.datetime.now(datetime.UTC)
    return [f"$ {command_line(script, argv)}",
            f"# {now:%Y-%m-%d %H:%M} UTC; {versions(packages)}{load_average('at start')}; "
            f"mode {mode}"]


def footer(start: float) -> str:
    """The last line: seconds since ``start`` (``time.perf_counter()``) and the load."""
    return f"# total {time.perf_counter() - start:.1f} s{load_average('at end')}"


def quick_or_full(argv: Sequence[str] | None, *, script: str, description: str,
                  quick_help: str, full: NamedTuple, quick: NamedTuple,
                  describe: Callable[[Any], str],
                  run: Callable[[Any], tuple[list[str], bool]]) -> int:
    """The command line of a benchmark with a full and a ``--quick`` mode.

    Prints the :func:`header`, ``describe(mode)`` (a ``# mode ...`` line), the lines
    ``run(mode)`` returns and the :func:`footer`.

    Args:
      argv: the arguments (``None``: ``sys.argv[1:]``).
      script: the script's file name (for the command line when ``argv`` is given).
      description: ``--help``'s first line.
      quick_help: ``--quick``'s help.
      full, quick: the two modes (each has a ``name``).
      describe: the mode's description line.
      run: measures; returns the report lines and whether every target was met.

    Returns:
      The exit status: 1 in full mode when a target was missed, else 0.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    mode = quick if parser.parse_args(argv).quick else full
    print("\n".join(header(script, argv, mode=mode.name)))
    print(describe(mode))
    print(flush=True)
    start = time.perf_counter()
    lines, ok = run(mode)
    print("\n".join(lines))
    print("\n" + footer(start))
    return 1 if mode is full and not ok else 0


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: str) -> list[str]:
    """A markdown table.

    Args:
      columns: the column titles.
      rows: the cells of each row (converted with ``str``).
      align: one letter per column, ``l`` (left) or ``r`` (right).

    Returns:
      The lines: titles, the alignment row, one line per row.

    Raises:
      ValueError: if ``align`` or a row does not have one entry per column.

    Example:
      >>> print("\\n".join(table(["n", "time"], [[1, "2.0"]], "lr")))
      | n | time |
      |---|---:|
      | 1 | 2.0 |
    """
    if len(align) != len(columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one of 'l'/'r' per column ({len(columns)}), "
                         f"got {align!r}")
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        cells = [str(cell) for cell in row]
        if len(cells) != len(columns):
            raise ValueError(f"a row must have {len(columns)} cells, got {cells!r}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _plain(name: str) -> str:
    """``jit(train_step)`` -> ``train_step`` (the backend event's spelling of the name)."""
    return name[4:-1] if name.startswith("jit(") and name.endswith(")") else name


class CompileLog:
    """The process's compile events while active, with marks (a ``CompileCounter`` inside).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> with CompileLog() as log:
      ...     mark = log.mark()
      ...     _ = jax.jit(lambda x: x + 1)(jnp.ones(3))
      >>> log.since(mark, "<lambda>")[0]
      1
    """

    def __init__(self) -> None:
        self.counter = CompileCounter()

    def __enter__(self) -> CompileLog:
        self.counter.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.counter.__exit__(*exc)

    def mark(self) -> int:
        """A position in the log, for :meth:`since`."""
        return len(self.counter.stages)

    def since(self, mark: int, fun_name: str | None = None) -> tuple[int, float]:
        """Backend compiles and seconds of all stages since ``mark``.

        Args:
          mark: a value of :meth:`mark`.
          fun_name: only this function (``'train_step'`` also matches the backend
            event's ``'jit(train_step)'``); ``None``: every function.

        Returns:
          ``(number of backend compiles, total seconds of trace + lowering + compile)``.
        """
        stages = [(event, seconds) for event, name, seconds in self.counter.stages[mark:]
                  if fun_name is None or _plain(name) == fun_name]
        return (sum(1 for event, _ in stages if event == BACKEND_COMPILE_EVENT),
                sum(seconds for _, seconds in stages))
