"""``stdlib_lm``: byte-level language modelling on the Python standard library's source.

Data: the ``.py`` files named in the package data file ``stdlib_lm_files.json``
(60 train, 8 validation, 8 test files), read from
``sysconfig.get_paths()['stdlib']`` — present on every Python install, so nothing
is downloaded. Each split's corpus is its files' bytes in list order, each file
followed by a NUL byte (``0x00``, absent from Python source) as an end-of-file
marker. The files differ between Python versions, so the corpus is
fingerprinted: ``metadata()['corpus_sha256']`` is the sha256 of the three
split corpora concatenated (train, validation, test).

Examples: windows of ``seq_len + 1`` bytes starting every ``seq_len`` bytes;
``inputs`` are the first ``seq_len`` bytes and ``targets`` the next-byte
shift, both int32 ``(seq_len,)``; ``weights`` are float32 ``(seq_len,)``. The
training set is every full window of the train corpus; validation and test are
*all* windows of their corpora, the last one zero-padded with weight 0 on the
padding, so every byte after the first is predicted exactly once. The eval-train
subset is ``num_eval_train_examples`` evenly spaced training windows.

Metrics: ``loss`` (mean next-byte cross-entropy in nats/byte, weighted by
``weights``) and ``accuracy`` (next-byte top-1). Target: ``validation/loss``.

Random-LTD: ``block_factory(layer_id, block, keep)`` (a constructor argument, e.g.
``algoperf_reinit.data_efficiency.random_ltd_block_factory``; this module does not
import the library) may wrap chosen layers; ``model_fn``'s static keyword
``random_ltd_keep`` is the kept length (``None``: dense) and the wrapped layers draw
from the ``'random_ltd'`` RNG stream, folded from ``model_fn``'s ``rng`` (the
``'dropout'`` stream stays ``rng`` itself). Nothing about it is a mutable attribute of
the workload: each kept length is a (cached) clone of the model and a new
compilation of the caller's jitted step. ``stdlib_lm_4x256``
(:class:`StdlibLM4x256Workload`) is the variant with layers for random-LTD to act
on: 4 layers, 256-byte sequences.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import sysconfig
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from algoperf_reinit_workloads import _validation as v
from algoperf_reinit_workloads import spec
from algoperf_reinit_workloads.base import BaseWorkload
from algoperf_reinit_workloads.transformer import TransformerLM

__all__ = [
    "FILE_LIST_NAME",
    "RANDOM_LTD_RNG",
    "StdlibCorpus",
    "StdlibLM4x256Workload",
    "StdlibLMWorkload",
    "TrainWindows",
    "load_stdlib_corpus",
]

FILE_LIST_NAME = "stdlib_lm_files.json"
SPLITS = ("train", "validation", "test")
SEPARATOR = b"\x00"
VOCAB_SIZE = 256
MISSING_POLICIES = ("error", "skip")
RANDOM_LTD_RNG = "random_ltd"
_RANDOM_LTD_FOLD = 0x4C5444  # fold_in(rng, ...) gives the 'random_ltd' stream

_MISSING_MSG = (
    "{n} file(s) of the pinned stdlib_lm file list are missing under {root!r}: {files}. "
    "The corpus would differ from the one the targets were set on. Point stdlib_dir at a "
    "complete standard library, or pass missing='skip' to drop them (recorded in "
    "metadata()['missing_files'])."
)


class StdlibCorpus(NamedTuple):
    """The three split corpora and their provenance.

    Attributes:
      splits: split name → uint8 array of the split's bytes.
      files: split name → the files actually read, in order.
      missing: files of the list that were absent (only with ``missing='skip'``).
      stdlib_dir: the directory the files were read from.
      sha256: hex sha256 of train + validation + test bytes.
      split_sha256: split name → hex sha256 of that split's bytes.
      file_list_sha256: hex sha256 of the file-list file's bytes.
      file_list_version: the ``version`` field of the file list.
    """

    splits: dict[str, np.ndarray]
    files: dict[str, tuple[str, ...]]
    missing: tuple[str, ...]
    stdlib_dir: str
    sha256: str
    split_sha256: dict[str, str]
    file_list_sha256: str
    file_list_version: int


def _read_file_list(file_list: str | os.PathLike | None) -> tuple[dict[str, list[str]], bytes]:
    if file_list is None:
        raw = importlib.resources.files(__package__).joinpath(FILE_LIST_NAME).read_bytes()
    else:
        with open(file_list, "rb") as f:
            raw = f.read()
    doc = json.loads(raw)
    for split in SPLITS:
        names = doc.get(split)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"file list must map {split!r} to a non-empty list of paths")
    every = [n for split in SPLITS for n in doc[split]]
    if len(every) != len(set(every)):
        raise ValueError("file list names a file in more than one place")
    return doc, raw


def load_stdlib_corpus(
    stdlib_dir: str | os.PathLike | None = None,
    file_list: str | os.PathLike | None = None,
    missing: str = "error",
) -> StdlibCorpus:
    """Reads the pinned standard-library files into three byte corpora.

    Args:
      stdlib_dir: root of the standard library; default
        ``sysconfig.get_paths()['stdlib']`` of the running Python.
      file_list: JSON file with ``train``/``validation``/``test`` lists of
        relative POSIX paths; default the packaged ``stdlib_lm_files.json``.
      missing: ``'error'`` (default) raises if a listed file is absent;
        ``'skip'`` drops it and records it in ``missing``.

    Returns:
      A :class:`StdlibCorpus`.

    Raises:
      ValueError: for a bad ``missing`` policy or file list.
      FileNotFoundError: if files are missing and ``missing='error'``, or a split
        ends up empty.
    """
    v.choice("missing", missing, MISSING_POLICIES)
    root = os.fspath(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    doc, raw_list = _read_file_list(file_list)
    absent = [n for s in SPLITS for n in doc[s] if not os.path.isfile(os.path.join(root, n))]
    if absent and missing == "error":
        raise FileNotFoundError(_MISSING_MSG.format(n=len(absent), root=root, files=absent))
    splits, files, split_sha = {}, {}, {}
    whole = hashlib.sha256()
    for split in SPLITS:
        present = tuple(n for n in doc[split] if n not in absent)
        if not present:
            raise FileNotFoundError(f"no file of the {split!r} split exists under {root!r}")
        chunks = []
        for name in present:
            with open(os.path.join(root, *name.split("/")), "rb") as f:
                chunks.append(f.read() + SEPARATOR)
        data = b"".join(chunks)
        whole.update(data)
        splits[split] = np.frombuffer(data, dtype=np.uint8)
        files[split] = present
        split_sha[split] = hashlib.sha256(data).hexdigest()
    return StdlibCorpus(
        splits=splits,
        files=files,
        missing=tuple(absent),
        stdlib_dir=root,
        sha256=whole.hexdigest(),
        split_sha256=split_sha,
        file_list_sha256=hashlib.sha256(raw_list).hexdigest(),
        file_list_version=int(doc.get("version", 0)),
    )


class TrainWindows:
    """``stdlib_lm``'s training windows by sample id (see ``training_dataset()``).

    ``dataset[i]`` (an int) gives one example, arrays ``(seq_len,)``; a slice or an
    integer array gives a batch ``{inputs, targets, weights}`` of ``(n, seq_len)``
    arrays (int32, int32, float32), read from the corpus on each call (nothing is
    held but the corpus). ``dataset[:]`` is the whole training set.
    """

    def __init__(self, workload: StdlibLMWorkload) -> None:
        self._workload = workload

    def __len__(self) -> int:
        return self._workload.num_train_examples

    def __getitem__(self, key: Any) -> dict[str, np.ndarray]:
        n = len(self)
        if isinstance(key, slice):
            return self._workload.train_examples(np.arange(n)[key])
        ids = np.asarray(key)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim > 1:
            raise v.type_error("key", key, "an int, a slice or a 1-D integer array")
        if ids.size and (ids.min() < -n or ids.max() >= n):
            raise v.value_error("key", key, f"sample ids in [-{n}, {n})")
        batch = self._workload.train_examples(np.where(ids < 0, ids + n, ids).reshape(-1))
        return {k: a[0] for k, a in batch.items()} if ids.ndim == 0 else batch


class StdlibLMWorkload(BaseWorkload):
    """Next-byte prediction on stdlib source; target ``validation/loss <= 1.45`` nats/byte.

    The targets, ``step_hint`` and budgets are set for the default configuration
    (and the corpus of CPython 3.11); other sizes are for tests and experiments.

    Args:
      seq_len: bytes per example (and the model's number of positions).
      width: model width.
      num_layers: decoder blocks.
      num_heads: attention heads.
      mlp_dim: MLP hidden width.
      num_eval_train_examples: size of the eval-train subset.
      eval_batch_size: default global eval batch size.
      stdlib_dir, file_list, missing: see :func:`load_stdlib_corpus`.
      block_factory: ``(layer_id, block, keep) -> module`` to wrap chosen layers
        (random-LTD), or ``None``.

    Example:
      >>> from algoperf_reinit_workloads import StdlibLMWorkload
      >>> workload = StdlibLMWorkload(seq_len=32, width=32, num_layers=1, num_heads=2, mlp_dim=64)
      >>> workload.metadata()["corpus_sha256"] == workload.corpus.sha256
      True
    """

    name = "stdlib_lm"
    target_metric_name = "loss"
    target_metric_lower_is_better = True
    validation_target_value = 1.45
    test_target_value = 1.45
    step_hint = 2000
    max_allowed_runtime_sec = 900
    eval_period_time_sec = 30.0

    def __init__(
        self,
        *,
        seq_len: int = 128,
        width: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_dim: int = 512,
        num_eval_train_examples: int = 256,
        eval_batch_size: int = 256,
        stdlib_dir: str | os.PathLike | None = None,
        file_list: str | os.PathLike | None = None,
        missing: str = "error",
        block_factory: Callable[[int, Any, int | None], Any] | None = None,
    ) -> None:
        super().__init__(eval_batch_size=eval_batch_size)
        if block_factory is not None and not callable(block_factory):
            raise v.type_error("block_factory", block_factory, "a callable or None")
        for name, value in dict(
            seq_len=seq_len,
            width=width,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            num_eval_train_examples=num_eval_train_examples,
        ).items():
            v.integer(name, value, minimum=1)
        if width % num_heads:
            raise v.value_error("num_heads", num_heads, f"a divisor of width={width}")
        self.seq_len = seq_len
        self.config = dict(
            seq_len=seq_len, width=width, num_layers=num_layers, num_heads=num_heads, mlp_dim=mlp_dim
        )
        self._model = TransformerLM(
            vocab_size=VOCAB_SIZE,
            max_len=seq_len,
            width=width,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            block_factory=block_factory,
        )
        self._block_factory = block_factory
        self._ltd_models: dict[int, TransformerLM] = {}
        self.corpus = load_stdlib_corpus(stdlib_dir, file_list, missing)
        train = self.corpus.splits["train"]
        self._num_train = (len(train) - 1) // seq_len
        if self._num_train < 1:
            raise ValueError(f"the train corpus ({len(train)} bytes) is shorter than {seq_len=} + 1")
        self._num_eval_train = min(num_eval_train_examples, self._num_train)
        self._eval_train_indices = np.unique(
            np.linspace(0, self._num_train - 1, self._num_eval_train).round().astype(np.int64)
        )
        self._num_eval_train = len(self._eval_train_indices)
        self._offsets = np.arange(seq_len + 1, dtype=np.int64)
        self._init = jax.jit(self._init_variables)

    # ------------------------------------------------------------------ data

    @property
    def num_train_examples(self) -> int:
        return self._num_train

    @property
    def num_eval_train_examples(self) -> int:
        return self._num_eval_train

    def _num_eval_windows(self, split: str) -> int:
        return math.ceil((len(self.corpus.splits[split]) - 1) / self.seq_len)

    @property
    def num_validation_examples(self) -> int:
        return self._num_eval_windows("validation")

    @property
    def num_test_examples(self) -> int:
        return self._num_eval_windows("test")

    def _windows(self, corpus: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
        rows = corpus[starts[:, None] + self._offsets[None, :]].astype(np.int32)
        return {"inputs": rows[:, :-1], "targets": rows[:, 1:]}

    def training_dataset(self) -> TrainWindows:
        """The training windows as an indexable dataset (sample id ``i`` = window ``i``).

        For code that picks training samples by id (an analyzer, a curriculum sampler,
        a device-resident gather): ``len()`` is :attr:`num_train_examples`, and
        ``dataset[key]`` returns what :meth:`train_examples` returns for those ids.
        """
        return TrainWindows(self)

    def train_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = self._windows(self.corpus.splits["train"], np.asarray(indices) * self.seq_len)
        batch["weights"] = np.ones(batch["targets"].shape, np.float32)
        return batch

    def _eval_arrays(self, split: str) -> dict[str, np.ndarray]:
        if split == "eval_train":
            return self.train_examples(self._eval_train_indices)
        corpus = self.corpus.splits[split]
        n = self._num_eval_windows(split)
        padded = np.concatenate([corpus, np.zeros(self.seq_len + 1, np.uint8)])
        starts = np.arange(n, dtype=np.int64) * self.seq_len
        batch = self._windows(padded, starts)
        # Target j of window s is byte s + j + 1; it exists iff that index < len(corpus).
        batch["weights"] = (starts[:, None] + self._offsets[None, 1:] < len(corpus)).astype(
            np.float32
        )
        return batch

    # ------------------------------------------------------------------ model

    @property
    def model(self) -> TransformerLM:
        """The flax module (for code that applies layers individually, e.g. random-LTD)."""
        return self._model

    def _init_variables(self, rng):
        tokens = jnp.zeros((1, self.seq_len), jnp.int32)
        return flax.core.unfreeze(self._model.init({"params": rng}, tokens))

    def init_model_fn(self, rng: spec.RandomState) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fresh params as plain single-device arrays; the model state is ``{}``.

        Also sets ``param_shapes`` and ``model_params_types``.
        """
        variables = dict(self._init(rng))
        params = variables.pop("params")
        self._set_param_info(params)
        return params, {}

    def _forward(self, params: spec.ParameterContainer, batch: Mapping[str, spec.Tensor],
                 model_state: spec.ModelAuxiliaryState, train: bool,
                 rng: spec.RandomState | None, update_batch_norm: bool,
                 dropout_rate: jax.typing.ArrayLike = 0.0,
                 random_ltd_keep: int | None = None,
                 ) -> tuple[jax.Array, spec.ModelAuxiliaryState]:
        """Forward pass (``model_fn(params, batch, model_state, mode, rng, ...)``).

        Args:
          params: model params.
          batch: dict with int ``inputs`` ``(B, L)``, ``L <= seq_len``, and
            optionally int ``positions`` ``(B, L)`` (default ``0 .. L-1``).
          model_state: ``{}`` (returned unchanged).
          train: whether ``model_fn``'s ``mode`` is ``ForwardPassMode.TRAIN``.
          rng: dropout key (TRAIN with a non-zero ``dropout_rate``).
          update_batch_norm: ignored (no batch norm).
          dropout_rate: embedding and residual dropout; default 0.0.
          random_ltd_keep: static kept length of the wrapped layers (TRAIN with a
            ``block_factory``; ``None``: dense); needs ``rng`` in TRAIN.

        Returns:
          ``(logits (B, L, 256), model_state)``.

        Raises:
          ValueError: for ``random_ltd_keep`` without a ``block_factory``, or in TRAIN
            without ``rng``.
        """
        del update_batch_norm
        model = self._model_for(random_ltd_keep)
        rngs = {}
        if train and rng is not None:
            rngs = {"dropout": rng, RANDOM_LTD_RNG: jax.random.fold_in(rng, _RANDOM_LTD_FOLD)}
        elif train and random_ltd_keep is not None:
            raise v.value_error("rng", rng, "a key in TRAIN mode with random_ltd_keep",
                                fix="the kept tokens are drawn from it")
        logits = model.apply(
            {"params": params},
            batch["inputs"],
            positions=batch.get("positions"),
            dropout_rate=dropout_rate,
            train=train,
            rngs=rngs,
        )
        return logits, model_state

    def _model_for(self, keep: int | None) -> TransformerLM:
        """The model with ``random_ltd_keep=keep`` (cached per kept length)."""
        if keep is None:
            return self._model
        keep = v.integer("random_ltd_keep", keep, minimum=0)
        if self._block_factory is None:
            raise v.value_error("random_ltd_keep", keep, "None without a block_factory",
                                fix="build the workload with block_factory=... to wrap layers")
        if keep not in self._ltd_models:
            self._ltd_models[keep] = self._model.clone(random_ltd_keep=keep)
        return self._ltd_models[keep]

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        corpus = self.corpus
        meta.update(
            data_source="sysconfig.get_paths()['stdlib']",
            stdlib_dir=corpus.stdlib_dir,
            corpus_sha256=corpus.sha256,
            **{f"{s}_sha256": corpus.split_sha256[s] for s in SPLITS},
            **{f"{s}_bytes": len(corpus.splits[s]) for s in SPLITS},
            **{f"{s}_files": len(corpus.files[s]) for s in SPLITS},
            missing_files=list(corpus.missing),
            file_list_sha256=corpus.file_list_sha256,
            file_list_version=corpus.file_list_version,
            **self.config,
        )
        return meta


class StdlibLM4x256Workload(StdlibLMWorkload):
    """``stdlib_lm_4x256``: 4 layers over 256-byte sequences (random-LTD has layers to act on).

    Defaults: ``seq_len=256``, ``num_layers=4``, ``width=128``, ``num_heads=4``,
    ``mlp_dim=512`` (other sizes may be given, as for :class:`StdlibLMWorkload`).
    Its own ``step_hint``, target and budget, set by a procedure stated before any
    data-efficiency run (``benchmarks/data_efficiency.py`` checks the target):
    ``step_hint`` 400 (one ``nadamw_baseline`` run about 10 minutes on one CPU core);
    targets the baseline's median (seeds 1, 2, 3, self-tuning defaults) validation and
    test loss at ``step_hint``, rounded up to 0.01 (2.1517 -> 2.16, 2.0989 -> 2.10); the
    budget twice its median submission time, rounded up to 100 s (469 s -> 1000 s).
    """

    name = "stdlib_lm_4x256"
    step_hint = 400
    validation_target_value = 2.16
    test_target_value = 2.10
    max_allowed_runtime_sec = 1000

    def __init__(self, **kwargs: Any) -> None:
        for key, value in dict(seq_len=256, num_layers=4, width=128, num_heads=4,
                               mlp_dim=512).items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
