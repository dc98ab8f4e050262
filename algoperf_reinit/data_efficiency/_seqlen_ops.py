"""What a sequence-length curriculum may act on, and its two pure ops on a batch.

**Detection** (:func:`sequence_batch`) decides from the batch alone — its keys, array
kinds, dtypes and shapes, never the workload's name — whether the batch is one the
curriculum may shorten. AlgoPerf lets ``data_selection`` modify examples only "as long
as the modifications are sufficiently generic to be applicable to any workload"; the
rule is: a dict holding integer token arrays ``inputs`` and ``targets`` and a per-token
``weights`` (loss weights or padding mask, numeric or bool), all of one shape
``[B, S]`` (one sequence axis, axis 1), where

* every other entry is also a ``[B, S]`` array (e.g. explicit ``positions``: cut the
  same way, moved as data), since a re-packed batch has other rows and a per-sample
  entry could not follow them;
* ``inputs`` and ``targets`` are not packed separately: a key ``inputs_position``,
  ``targets_segmentation`` (or the plural) marks per-stream packing, i.e. a
  sequence-to-sequence batch whose position ``j`` of ``inputs`` and of ``targets``
  belong to different examples; cutting it would pair a source with a target it does
  not translate.

Every other batch passes through unchanged. On AlgoPerf's workloads (training batches):

============================  ===========================================  ============
workload                      batch                                        curriculum
============================  ===========================================  ============
mnist, cifar                  ``inputs`` float images, ``targets`` int     passes
                              ``[B]`` (``weights`` ``[B]`` when padded)
imagenet_resnet, imagenet_vit ``inputs`` float ``[B, 224, 224, 3]``,       passes
                              ``targets`` int ``[B]``
criteo1tb                     ``inputs`` float ``[B, 39]``, ``targets``    passes
                              float ``[B]``, ``weights`` ``[B]``
fastmri                       ``inputs``/``targets`` float                 passes
                              ``[B, 320, 320]``, ``mean``, ``std``,
                              ``volume_max``, ``weights`` ``[B]``
ogbg                          ``inputs`` a ``jraph.GraphsTuple``,          passes
                              ``targets`` float / ``weights`` bool
                              ``[B, 128]``
librispeech_conformer,        ``inputs`` (audio, paddings) and ``targets`` passes
librispeech_deepspeech        (ids, paddings): tuples, not arrays
wmt                           int ``inputs``/``targets``/``weights``       passes
                              ``[B, 256]`` plus ``inputs_position``,
                              ``inputs_segmentation``,
                              ``targets_position``,
                              ``targets_segmentation`` (packed seq2seq)
our ``stdlib_lm``             int32 ``inputs``/``targets``, float32        acts
                              ``weights``, ``[B, S]``
============================  ===========================================  ============

Inputs and targets of different lengths (no shared sequence axis) pass as well.

**Ops** (jittable, the length static; :func:`seqlen_op` jits one with its output
sharded ``P('batch')`` and its count of non-zero weights): :func:`truncate_batch` keeps the first ``L``
positions of every array (DeepSpeed's ``seqlen_truncate`` post-processing, the legacy
``curriculum_seqlen``); :func:`reshape_batch` re-packs (``seqlen_reshape``, spec §3.9):
each ``[B, S]`` array is cut into rows of length ``L`` — the first ``(S // L) * L``
positions of every row reshaped to ``B * (S // L)`` rows, then the last ``L`` positions
of each row appended as ``B`` more rows — and only the first ``ceil(B * S / L)`` rows
are kept (when ``L`` divides ``S`` the appended rows are all dropped). Ours then pads
with all-zero rows (``weights`` 0: no loss) to a multiple of ``row_multiple`` (the
device count), so the batch shards evenly on the ``'batch'`` axis.

Where we differ from DeepSpeed's examples: Megatron truncates and re-packs its
``text`` tensor of ``S + 1`` tokens into rows of ``L + 1`` (inputs and labels are its
shifted views); ours cuts ``inputs`` and ``targets`` (already shifted, ``S`` each) into
rows of ``L``. Truncation keeps the same ``L`` predictions per row; re-packing keeps
every prediction (Megatron's loses the one across each cut), with less context at the
start of each cut row.

Example:
  >>> import numpy as np
  >>> tokens = np.arange(12, dtype=np.int32).reshape(2, 6)
  >>> batch = {"inputs": tokens, "targets": tokens + 1, "weights": np.ones((2, 6))}
  >>> sequence_batch(batch).acts
  True
  >>> reshape_batch(batch, 4)["inputs"].tolist()  # ceil(12 / 4) = 3 rows
  [[0, 1, 2, 3], [6, 7, 8, 9], [2, 3, 4, 5]]
  >>> sequence_batch({"inputs": np.zeros((2, 8), np.float32)}).reason
  "no 'targets' in the batch"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from algoperf_reinit import _validation

__all__ = [
    "PACKING_KEYS",
    "SEQLEN_MODES",
    "TOKEN_KEYS",
    "WEIGHTS_KEY",
    "SequenceBatch",
    "count_weights",
    "reshape_batch",
    "reshaped_rows",
    "seqlen_op",
    "sequence_batch",
    "truncate_batch",
]

SEQLEN_MODES = ("seqlen_truncate", "seqlen_reshape")
"""DeepSpeed's post-processing metric names: truncate, or re-pack into more rows."""

TOKEN_KEYS = ("inputs", "targets")
"""The integer token arrays a sequence batch holds."""
WEIGHTS_KEY = "weights"
"""The per-token loss weights / padding mask (0: padding); re-packed padding rows get 0."""
PACKING_KEYS = tuple(f"{stream}_{kind}" for stream in TOKEN_KEYS
                     for kind in ("position", "positions", "segmentation", "segmentations"))
"""Keys that mark separately packed ``inputs`` and ``targets`` (sequence to sequence)."""


class SequenceBatch(NamedTuple):
    """What :func:`sequence_batch` found: whether to act, why, and the batch's shape."""

    acts: bool
    reason: str
    batch_size: int | None = None
    seq_len: int | None = None


def _is_array(value: Any) -> bool:
    return (not isinstance(value, tuple | list) and hasattr(value, "shape")
            and hasattr(value, "dtype"))


def _kind(value: Any) -> str:
    return type(value).__name__ if not _is_array(value) else f"{value.dtype} {tuple(value.shape)}"


def sequence_batch(batch: Any) -> SequenceBatch:
    """Whether the curriculum acts on ``batch`` (the rule in the module docstring).

    Args:
      batch: anything ``data_selection`` may see.

    Returns:
      A :class:`SequenceBatch`; ``batch_size``/``seq_len`` are set when it acts.
    """
    if not isinstance(batch, Mapping):
        return SequenceBatch(False, f"a {type(batch).__name__}, not a dict of arrays")
    for key in (*TOKEN_KEYS, WEIGHTS_KEY):
        if key not in batch:
            return SequenceBatch(False, f"no {key!r} in the batch")
        if not _is_array(batch[key]):
            return SequenceBatch(False, f"{key!r} is a {_kind(batch[key])}, not an array")
    shape = tuple(batch["inputs"].shape)
    for key in TOKEN_KEYS:
        value = batch[key]
        if len(value.shape) != 2 or not np.issubdtype(value.dtype, np.integer):
            return SequenceBatch(False, f"{key!r} is {_kind(value)}, not integer tokens [B, S]")
    for key in ("targets", WEIGHTS_KEY):
        if tuple(batch[key].shape) != shape:
            return SequenceBatch(False, f"{key!r} has shape {tuple(batch[key].shape)}, "
                                        f"'inputs' {shape}: no shared sequence axis")
    packed = sorted(set(batch) & set(PACKING_KEYS))
    if packed:
        return SequenceBatch(False, f"{packed} mark inputs and targets packed separately "
                                    "(sequence to sequence): position j is not one example")
    for key, value in batch.items():
        if not _is_array(value) or tuple(value.shape) != shape:
            return SequenceBatch(False, f"{key!r} is {_kind(value)}, not a {list(shape)} "
                                        "array that can be cut with the tokens")
    return SequenceBatch(True, f"integer tokens {list(shape)} with weights", *shape)


def _check_length(length: Any) -> int:
    return _validation.integer("length", length, minimum=1)


def truncate_batch(batch: Mapping[str, Any], length: int) -> dict[str, Any]:
    """``seqlen_truncate``: the first ``length`` positions of every ``[B, S]`` array.

    Args:
      batch: a batch :func:`sequence_batch` acts on (arrays ``[B, S]``).
      length: ``L >= 1`` (static under jit); ``L >= S`` keeps everything.

    Returns:
      The truncated batch (a new dict; arrays ``[B, min(L, S)]``).
    """
    length = _check_length(length)
    return {key: value[:, :length] for key, value in batch.items()}


def reshaped_rows(batch_size: int, seq_len: int, length: int, row_multiple: int = 1
                  ) -> tuple[int, int]:
    """Rows of a re-packed batch: ``(ceil(B * S / L), that rounded up to row_multiple)``.

    ``L >= S`` is no re-packing: ``(B, B)``.

    Example:
      >>> reshaped_rows(3, 10, 4, row_multiple=4)
      (8, 8)
      >>> reshaped_rows(3, 10, 3, row_multiple=4)
      (10, 12)
    """
    if length >= seq_len:
        return batch_size, batch_size
    kept = -(-batch_size * seq_len // length)
    return kept, -(-kept // row_multiple) * row_multiple


def reshape_batch(batch: Mapping[str, Any], length: int, *, row_multiple: int = 1
                  ) -> dict[str, Any]:
    """``seqlen_reshape``: re-pack every ``[B, S]`` array into rows of ``length``.

    Args:
      batch: a batch :func:`sequence_batch` acts on (arrays ``[B, S]``, with
        ``weights``).
      length: ``L >= 1`` (static under jit); ``L >= S`` returns the batch's arrays.
      row_multiple: pad the rows with all-zero rows (weight 0) to a multiple of this
        (the device count); static.

    Returns:
      A new dict of arrays ``[R, L]``, ``R`` the second value of :func:`reshaped_rows`.
    """
    length = _check_length(length)
    row_multiple = _validation.integer("row_multiple", row_multiple, minimum=1)
    batch_size, seq_len = batch[WEIGHTS_KEY].shape
    if length >= seq_len:
        return dict(batch)
    kept, padded = reshaped_rows(batch_size, seq_len, length, row_multiple)
    cut = (seq_len // length) * length

    def repack(x: Any) -> Any:
        x = jnp.asarray(x)
        rows = jnp.concatenate([x[:, :cut].reshape(-1, length), x[:, seq_len - length:]])
        rows = rows[:kept]
        if padded > kept:
            rows = jnp.concatenate([rows, jnp.zeros((padded - kept, length), x.dtype)])
        return rows

    return {key: repack(value) for key, value in batch.items()}


def seqlen_op(mode: str, length: int, *, mesh: Mesh, row_multiple: int | None = None
              ) -> Callable[[Mapping[str, Any]], tuple[dict[str, jax.Array], jax.Array]]:
    """One mode at one length, jitted: ``batch -> (cut batch, its non-zero weights)``.

    Args:
      mode: one of :data:`SEQLEN_MODES`.
      length: ``L >= 1``.
      mesh: the output's mesh: the batch ``P('batch')``, the count replicated.
      row_multiple: re-packed rows are padded to a multiple of this; default the
        size of the mesh's ``'batch'`` axis.

    Returns:
      The jitted function (it compiles once per input shape).
    """
    mode = _validation.choice("mode", mode, SEQLEN_MODES)
    length = _check_length(length)
    multiple = mesh.shape["batch"] if row_multiple is None else row_multiple

    def cut(batch: Mapping[str, Any]) -> tuple[dict[str, jax.Array], jax.Array]:
        if mode == "seqlen_truncate":
            out = truncate_batch(batch, length)
        else:
            out = reshape_batch(batch, length, row_multiple=multiple)
        return out, jnp.count_nonzero(out[WEIGHTS_KEY])

    return jax.jit(cut, out_shardings=(NamedSharding(mesh, P("batch")),
                                       NamedSharding(mesh, P())))


@jax.jit
def count_weights(weights: jax.Array) -> jax.Array:
    """The number of non-zero weights (the tokens that carry a loss), on device."""
    return jnp.count_nonzero(weights)
