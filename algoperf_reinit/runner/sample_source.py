"""A training stream driven by sample ids: a sampler's ids, gathered into batches.

Our runner normally trains on the workload's own step-indexed input queue. Given a
*sample-source factory* instead (``run(flags, sample_source=factory)``, or a submission
file's own ``sample_source(workload, global_batch_size, data_rng)`` hook, see
:mod:`algoperf_reinit.run_protocol`), it trains on a :class:`SampleSource`: each global batch is a sampler's next array of sample ids
(for example :class:`~algoperf_reinit.data_efficiency.DeepSpeedDataSampler` with
``micro_batch_size`` = the global batch, one rank and one accumulation step) turned
into examples by a gather (for example
:class:`~algoperf_reinit.data_efficiency.DeviceDataset` over the workload's
``training_dataset()``), so the host moves only ids.

Resumable with the run: every checkpoint stores :meth:`SampleSource.state_dict` (the
sampler's own ``state_dict()``, JSON data, and the number of batches drawn) under
:data:`SAMPLE_SOURCE_KEY` of its metadata, and a resumed trial loads it into a fresh
source before the first step (:func:`open_sample_source`), so it draws the batches
the uninterrupted run would have drawn. The source never prefetches: its state is
always that after the last batch handed out, which is the state after the
checkpoint's step (``data_selection`` takes one batch per step).

Single process: a multi-host run would give each process the same factory (the
sampler computes the same global batch everywhere, see its docs); not wired here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from algoperf_reinit import _validation

__all__ = ["SAMPLE_SOURCE_KEY", "IdSampler", "SampleSource", "open_sample_source",
           "sample_source_meta"]

SAMPLE_SOURCE_KEY = "sample_source"
"""Key of a checkpoint's metadata holding the source's state."""


class IdSampler(Protocol):
    """What a :class:`SampleSource` draws ids from (``DeepSpeedDataSampler`` is one)."""

    def __iter__(self) -> Iterator[Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None: ...


class SampleSource:
    """Global batches ``gather(ids)`` for the sampler's successive id arrays; resumable.

    Args:
      sampler: yields one global batch of sample ids per item; JSON-serialisable
        ``state_dict()`` and ``load_state_dict()``.
      gather: ``ids -> batch`` (a dict of arrays sharded on the ``'batch'`` axis).

    Raises:
      TypeError: for a sampler without ``state_dict``/``load_state_dict`` or a gather
        that is not callable.
    """

    def __init__(self, sampler: IdSampler, gather: Callable[[Any], Any]) -> None:
        for name in ("__iter__", "state_dict", "load_state_dict"):
            if not callable(getattr(sampler, name, None)):
                raise _validation.type_error("sampler", type(sampler).__name__,
                                             f"an object with {name}()")
        if not callable(gather):
            raise _validation.type_error("gather", gather, "a callable ids -> batch")
        self._sampler = sampler
        self._gather = gather
        self._it: Iterator[Any] | None = None
        self._batches = 0

    @property
    def sampler(self) -> IdSampler:
        """The id sampler."""
        return self._sampler

    @property
    def batches(self) -> int:
        """Global batches handed out (including those before a restore)."""
        return self._batches

    def __iter__(self) -> SampleSource:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self._sampler)
        ids = next(self._it)
        self._batches += 1
        return self._gather(ids)

    def state_dict(self) -> dict[str, Any]:
        """``{"batches": n, "sampler": sampler.state_dict()}`` (JSON data)."""
        return {"batches": self._batches, "sampler": self._sampler.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue after the batches of a :meth:`state_dict`."""
        _validation.instance("sample source state", state_dict, Mapping)
        self._batches = _validation.integer("sample source state['batches']",
                                            state_dict.get("batches"), minimum=0)
        self._sampler.load_state_dict(state_dict["sampler"])
        self._it = None


SampleSourceFactory = Callable[[Any, int], SampleSource]
"""``factory(workload, global_batch_size) -> SampleSource``."""


def open_sample_source(factory: SampleSourceFactory, workload: Any, global_batch_size: int,
                       *, start_step: int = 0,
                       checkpoint_meta: Mapping[str, Any] | None = None) -> SampleSource:
    """The trial's source: built by ``factory``, restored from a checkpoint's metadata.

    Args:
      factory: ``(workload, global_batch_size) -> SampleSource``.
      workload: the trial's workload.
      global_batch_size: the submission's batch size.
      start_step: the step the trial resumes at (0: a new trial).
      checkpoint_meta: the resumed checkpoint's metadata (``None``: a new trial).

    Raises:
      TypeError: if the factory does not return a SampleSource.
      ValueError: resuming from a checkpoint without a source state (a run without
        one), or whose source drew another number of batches than ``start_step``.
    """
    source = factory(workload, global_batch_size)
    _validation.instance("sample_source(workload, global_batch_size)", source, SampleSource)
    if checkpoint_meta is None:
        return source
    state = checkpoint_meta.get(SAMPLE_SOURCE_KEY)
    if state is None:
        raise _validation.value_error(
            f"checkpoint meta[{SAMPLE_SOURCE_KEY!r}]", None, "the sample source's state",
            fix="the checkpoint is of a run on the workload's own input queue")
    source.load_state_dict(state)
    if source.batches != start_step:
        raise _validation.value_error(
            "sample source batches in the checkpoint", source.batches,
            f"the checkpoint's step {start_step}",
            fix="data_selection must take one batch per step")
    return source


def sample_source_meta(input_queue: Any) -> dict[str, Any]:
    """``{SAMPLE_SOURCE_KEY: state}`` for a :class:`SampleSource`, else ``{}`` (checkpoints)."""
    if isinstance(input_queue, SampleSource):
        return {SAMPLE_SOURCE_KEY: input_queue.state_dict()}
    return {}
