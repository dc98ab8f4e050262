"""A lock on a trial directory: one process at a time runs (or resumes) a trial.

:func:`trial_lock` takes an exclusive ``fcntl.flock`` on ``<trial_dir>/.lock`` for
the duration of the trial and writes the holder's host and process id into it.
A second runner on the same trial (two ``--resume_last_run`` started at once)
gets :class:`TrialLockedError` naming the holder, and changes nothing. The
operating system releases a ``flock`` when its process dies, so a lock file left
behind by a killed run is *stale*: the next run takes it over and says which
dead process left it. The file is removed when the trial ends (also by an
exception); only a killed process leaves it behind.

``flock`` works on local file systems; on a network file system shared by
several hosts only process 0 of a multi-process run takes the lock (the others
never write the trial directory), so two *runs* on different hosts are not
excluded there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import socket
from collections.abc import Callable, Iterator

__all__ = ["LOCK_NAME", "TrialLockedError", "trial_lock"]

LOCK_NAME = ".lock"
"""The lock file's name inside the trial directory."""


class TrialLockedError(ValueError):
    """Another live process holds the trial directory's lock."""


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _open_locked(path: pathlib.Path) -> int:
    """Opens and locks ``path``; retries if the file was replaced meanwhile."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrialLockedError(
                f"trial directory {str(path.parent)!r} is in use by another run ({holder}, "
                f"lock file {str(path)!r}); wait for it to end, or stop it and pass "
                "--resume_last_run again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # removed by its holder between our open and our lock


@contextlib.contextmanager
def trial_lock(trial_dir: str | pathlib.Path,
               say: Callable[[str], None] = lambda text: None) -> Iterator[pathlib.Path]:
    """Holds the trial directory's lock while the ``with`` block runs.

    Args:
      trial_dir: the trial directory (it must exist).
      say: prints one line (used when a stale lock of a dead process is taken over).

    Yields:
      The lock file's path.

    Raises:
      TrialLockedError: if a live process holds the lock (nothing is changed).
    """
    path = pathlib.Path(trial_dir) / LOCK_NAME
    fd = _open_locked(path)
    try:
        stale = os.pread(fd, 256, 0).decode(errors="replace").strip()
        if stale:
            say(f"{path.parent.name}: taking over the stale lock of {stale} (that process "
                "has ended)")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder() + "\n").encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)  # still ours: we hold the lock
        os.close(fd)  # closing releases the flock
