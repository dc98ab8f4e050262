"""Shared machinery of the bundled workloads: sharding, step-indexed data, eval, targets.

A workload here implements the part of AlgoPerf v0.6's JAX ``Workload`` that a
submission and a runner use (see ``ALGOPERF_API.md``). :class:`BaseWorkload`
holds everything that does not depend on the data or the model:

* **Sharding.** One 1-D mesh over ``jax.devices()`` with the axis ``'batch'``.
  Batches are global ``jax.Array``s of shape ``(global_batch_size, ...)`` sharded
  ``P('batch')``; params and model state are replicated (``P()``) for evals.
* **A step-indexed training stream.** ``train_batch(rng, step, batch_size)`` is a
  pure function of its arguments: example ``g = step * batch_size + i`` of the
  stream is entry ``g % N`` of epoch ``g // N``'s permutation of the ``N``
  training examples, and that permutation is drawn by NumPy from a seed made of
  the key's two uint32 words and the epoch. ``_build_input_queue(...,
  start_step=k)`` yields ``train_batch(rng, k)``, ``train_batch(rng, k + 1)``, ...,
  so a resumed run sees exactly the batches it would have seen.
* **Evaluation** over the eval-train subset, validation and test: each split is
  padded to a multiple of the eval batch size with zero ``weights``, placed on
  the devices once and cached, and reduced by one jitted function (one compile
  per eval batch size) that returns weighted sums.
* **Targets**, ``param_shapes``/``model_params_types`` (set by ``init_model_fn``)
  and the metrics logger hook.

Subclasses provide the data (``train_examples``, ``_eval_arrays``), the model
(``init_model_fn``, ``model_fn``) and the constants (targets, budgets).
"""

from __future__ import annotations

import abc
import collections
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from algoperf_reinit_workloads import spec
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["EVAL_SPLITS", "BaseWorkload", "infer_param_types", "param_shapes_of"]

EVAL_SPLITS = ("eval_train", "validation", "test")
# eval_model's key prefix for each eval split.
_SPLIT_PREFIX = {"eval_train": "train", "validation": "validation", "test": "test"}
_PERMUTATION_CACHE_SIZE = 4

_NOT_INITIALISED = (
    "{name} is only known after the model is built: call workload.init_model_fn(rng) "
    "first (AlgoPerf's runner does so before init_optimizer_state)."
)


# --------------------------------------------------------------------------- params


def param_shapes_of(params: Any) -> Any:
    """Returns the tree of :class:`~spec.ShapeTuple` for a params tree."""
    return jax.tree.map(lambda x: spec.ShapeTuple(tuple(int(d) for d in np.shape(x))), params)


def _param_type(path: tuple[str, ...]) -> spec.ParameterType:
    """The type of one leaf from its key path (module names, then the leaf name)."""
    T = spec.ParameterType
    leaf = path[-1]
    parent = path[-2].lower() if len(path) > 1 else ""
    ancestors = [p.lower() for p in path[:-1]]
    if "batchnorm" in parent or parent.startswith("bn"):
        norm = {"scale": T.BATCH_NORM_SCALE, "bias": T.BATCH_NORM_BIAS}
        if leaf in norm:
            return norm[leaf]
    elif "layernorm" in parent or parent.startswith("ln"):
        norm = {"scale": T.LAYER_NORM_SCALE, "bias": T.LAYER_NORM_BIAS}
        if leaf in norm:
            return norm[leaf]
    elif leaf == "embedding":
        return T.EMBEDDING
    elif any("attention" in a for a in ancestors[:-1]) and parent in (
        "query",
        "key",
        "value",
        "out",
    ):
        if leaf == "bias":
            return T.ATTENTION_BIAS
        if leaf == "kernel":
            return {
                "query": T.ATTENTION_Q,
                "key": T.ATTENTION_K,
                "value": T.ATTENTION_V,
                "out": T.ATTENTION_OUT,
            }[parent]
    elif "conv" in parent:
        if leaf == "kernel":
            return T.CONV_WEIGHT
        if leaf == "bias":
            return T.BIAS
    elif leaf == "kernel":
        return T.WEIGHT
    elif leaf == "bias":
        return T.BIAS
    raise ValueError(
        f"cannot infer the ParameterType of parameter {'/'.join(path)!r}: name modules "
        "so that the rules in infer_param_types' docstring apply"
    )


def infer_param_types(params: Mapping[str, Any]) -> dict[str, Any]:
    """Derives ``model_params_types`` from flax module and parameter names.

    Rules, applied to each leaf's key path (module names compared lower-case):

    * parent module contains ``batchnorm`` or starts with ``bn``: ``scale`` →
      ``BATCH_NORM_SCALE``, ``bias`` → ``BATCH_NORM_BIAS``;
    * parent contains ``layernorm`` or starts with ``ln``: ``LAYER_NORM_SCALE`` /
      ``LAYER_NORM_BIAS``;
    * leaf ``embedding`` (``flax.linen.Embed``) → ``EMBEDDING``;
    * parent ``query``/``key``/``value``/``out`` inside a module whose name
      contains ``attention``: ``kernel`` → ``ATTENTION_Q``/``_K``/``_V``/``_OUT``,
      ``bias`` → ``ATTENTION_BIAS``;
    * parent contains ``conv``: ``kernel`` → ``CONV_WEIGHT``, ``bias`` → ``BIAS``;
    * otherwise ``kernel`` → ``WEIGHT`` and ``bias`` → ``BIAS``.

    Anything else raises rather than guessing.

    Args:
      params: nested dict of parameter arrays.

    Returns:
      A nested dict with the same keys whose leaves are :class:`~spec.ParameterType`.

    Raises:
      ValueError: for a leaf no rule covers.
    """

    def walk(tree: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for key, value in tree.items():
            if isinstance(value, Mapping):
                out[key] = walk(value, (*path, str(key)))
            else:
                out[key] = _param_type((*path, str(key)))
        return out

    return walk(params, ())


def _key_words(rng: Any) -> tuple[int, ...]:
    """The uint32 words of a raw (uint32[2]) or typed JAX key, as Python ints."""
    if jnp.issubdtype(getattr(rng, "dtype", np.uint32), jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)
    words = np.asarray(jax.device_get(rng))
    if words.dtype.kind not in "ui" or words.size == 0:
        raise TypeError(f"data_rng must be a JAX PRNG key, got {words.dtype} array {words!r}")
    return tuple(int(w) for w in words.astype(np.uint32).ravel())


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------- workload


class BaseWorkload(abc.ABC):
    """Workload base class: sharding, step-indexed training data, eval and targets.

    Subclass contract: set the class constants below, call ``super().__init__()``,
    and implement :meth:`train_examples`, :meth:`_eval_arrays`,
    :meth:`init_model_fn` (calling :meth:`_set_param_info`) and :meth:`model_fn`.
    The default :meth:`loss_fn` / eval metrics are softmax cross-entropy and
    accuracy over the last axis of the logits, weighted by ``weights``.
    """

    name: ClassVar[str]
    loss_type: ClassVar[spec.LossType] = spec.LossType.SOFTMAX_CROSS_ENTROPY
    target_metric_name: ClassVar[str]
    target_metric_lower_is_better: ClassVar[bool]
    validation_target_value: ClassVar[float]
    test_target_value: ClassVar[float]
    step_hint: ClassVar[int]
    max_allowed_runtime_sec: ClassVar[int]
    eval_period_time_sec: ClassVar[float]
    output_param_key: ClassVar[str] = "output"

    def __init__(self, *, eval_batch_size: int) -> None:
        self._eval_batch_size = _check_positive_int("eval_batch_size", eval_batch_size)
        self._param_shapes: Any = None
        self._param_types: Any = None
        self.metrics_logger: Any = None
        self._mesh: Mesh | None = None
        self._eval_batches_cache: dict[tuple[str, int], list[dict[str, jax.Array]]] = {}
        self._permutations: collections.OrderedDict[tuple[Any, ...], np.ndarray] = (
            collections.OrderedDict()
        )
        self._num_eval_traces = 0
        self._eval_step = jax.jit(self._eval_batch_sums)

    # ---------------------------------------------------------------- data facts

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """Number of examples in one training epoch."""

    @property
    @abc.abstractmethod
    def num_eval_train_examples(self) -> int:
        """Number of training examples evaluated for the ``train/*`` metrics."""

    @property
    @abc.abstractmethod
    def num_validation_examples(self) -> int:
        """Number of validation examples."""

    @property
    @abc.abstractmethod
    def num_test_examples(self) -> int:
        """Number of test examples."""

    @property
    def eval_batch_size(self) -> int:
        """Default global eval batch size (the runner passes it to ``eval_model``)."""
        return self._eval_batch_size

    def num_examples(self, split: str) -> int:
        """Number of examples in ``split`` (``'train'`` or one of :data:`EVAL_SPLITS`)."""
        counts = {
            "train": self.num_train_examples,
            "eval_train": self.num_eval_train_examples,
            "validation": self.num_validation_examples,
            "test": self.num_test_examples,
        }
        if split not in counts:
            raise ValueError(f"unknown split {split!r}; valid splits: {sorted(counts)}")
        return counts[split]

    # ---------------------------------------------------------------- sharding

    @property
    def mesh(self) -> Mesh:
        """The 1-D device mesh ``Mesh(jax.devices(), ('batch',))`` (built on first use)."""
        if self._mesh is None:
            self._mesh = Mesh(np.asarray(jax.devices()), ("batch",))
        return self._mesh

    @property
    def batch_sharding(self) -> NamedSharding:
        """``NamedSharding(mesh, P('batch'))``: leading axis split over all devices."""
        return NamedSharding(self.mesh, P("batch"))

    @property
    def replicated_sharding(self) -> NamedSharding:
        """``NamedSharding(mesh, P())``: a full copy on every device."""
        return NamedSharding(self.mesh, P())

    def replicate(self, tree: Any) -> Any:
        """Places every leaf of ``tree`` on all devices (a no-op if already there)."""
        return jax.device_put(tree, self.replicated_sharding)

    def shard_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Turns a host batch into global arrays sharded on the leading axis.

        Every process must pass the same global batch (the data here is a pure
        function of the key and step, so every host can build it); each device
        receives its slice.

        Args:
          batch: dict of host arrays sharing the leading (global batch) dimension.

        Returns:
          Dict of global ``jax.Array``s with ``batch_sharding``.

        Raises:
          ValueError: if the leading dimension is not divisible by the device count.
        """
        num_devices = self.mesh.size
        out = {}
        for key, value in batch.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] % num_devices:
                raise ValueError(
                    f"batch[{key!r}] has shape {value.shape}; its leading (global batch) "
                    f"dimension must be divisible by the {num_devices} devices"
                )
            if jax.process_count() == 1:
                out[key] = jax.device_put(value, self.batch_sharding)
            else:
                out[key] = jax.make_array_from_callback(
                    value.shape, self.batch_sharding, lambda index, v=value: v[index]
                )
        return out

    def _check_global_batch_size(self, global_batch_size: Any) -> int:
        size = _check_positive_int("global_batch_size", global_batch_size)
        if size % self.mesh.size:
            raise ValueError(
                f"global_batch_size={size} must be divisible by the number of devices "
                f"({self.mesh.size})"
            )
        return size

    # ---------------------------------------------------------------- training data

    @abc.abstractmethod
    def train_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Host arrays ``inputs``, ``targets``, ``weights`` of training examples ``indices``."""

    def _epoch_permutation(self, words: tuple[int, ...], epoch: int) -> np.ndarray:
        key = (*words, epoch)
        perm = self._permutations.get(key)
        if perm is None:
            seed = np.random.SeedSequence([*words, epoch])
            perm = np.random.Generator(np.random.PCG64(seed)).permutation(
                self.num_train_examples
            )
            self._permutations[key] = perm
            if len(self._permutations) > _PERMUTATION_CACHE_SIZE:
                self._permutations.popitem(last=False)
        return perm

    def train_indices(self, data_rng: Any, step: int, global_batch_size: int) -> np.ndarray:
        """Indices of the training examples in batch ``step`` of the stream for ``data_rng``.

        Example ``i`` of batch ``step`` is ``g = step * global_batch_size + i`` of
        the stream: entry ``g % N`` of epoch ``g // N``'s permutation (a batch may
        straddle two epochs).

        Args:
          data_rng: a JAX PRNG key (raw ``uint32[2]`` or typed).
          step: the 0-based batch index.
          global_batch_size: batch size over all devices.

        Returns:
          int64 array of shape ``(global_batch_size,)``.

        Raises:
          ValueError: for a negative ``step`` or a non-positive batch size.
        """
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        size = _check_positive_int("global_batch_size", global_batch_size)
        words = _key_words(data_rng)
        n = self.num_train_examples
        positions = int(step) * size + np.arange(size, dtype=np.int64)
        epochs, offsets = np.divmod(positions, n)
        indices = np.empty(size, dtype=np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            indices[where] = self._epoch_permutation(words, int(epoch))[offsets[where]]
        return indices

    def train_batch(self, data_rng: Any, step: int, global_batch_size: int) -> dict[str, jax.Array]:
        """Training batch ``step`` of the stream for ``data_rng``, sharded on ``'batch'``.

        A pure function of its arguments (see :meth:`train_indices`).

        Returns:
          Dict with ``inputs``, ``targets`` and ``weights`` (all ones) as global arrays.
        """
        size = self._check_global_batch_size(global_batch_size)
        return self.shard_batch(self.train_examples(self.train_indices(data_rng, step, size)))

    def _build_input_queue(
        self,
        data_rng: Any,
        split: str,
        data_dir: str | None,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
        start_step: int = 0,
    ) -> Iterator[dict[str, jax.Array]]:
        """The input pipeline (runner-only; AlgoPerf forbids submissions to call it).

        Args:
          data_rng: key of the training stream (ignored for eval splits).
          split: ``'train'`` for the infinite, step-indexed training stream, or an
            eval split (``'eval_train'``, ``'validation'``, ``'test'``): its padded
            batches in order, once (repeated forever if ``repeat_final_dataset``).
          data_dir: ignored; the data ships inside installed packages.
          global_batch_size: batch size over all devices (divisible by their count).
          cache: ignored (everything is in memory).
          repeat_final_dataset: eval splits only, see ``split``.
          num_batches: if given, stop after that many batches.
          start_step: first training step to yield (resume); train split only.

        Returns:
          An iterator of dicts ``inputs``, ``targets``, ``weights`` of global arrays.

        Raises:
          ValueError: for an unknown split or bad sizes (raised at the call, not
          on the first ``next``).
        """
        del data_dir, cache
        size = self._check_global_batch_size(global_batch_size)
        if num_batches is not None:
            num_batches = _check_positive_int("num_batches", num_batches)
        if split == "train":
            if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
                raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
            self.train_indices(data_rng, start_step, size)  # validates the key early
            return self._train_stream(data_rng, start_step, size, num_batches)
        if split not in EVAL_SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: ('train', *{EVAL_SPLITS})")
        if start_step:
            raise ValueError(f"start_step applies to the train split only, got {start_step=}")
        return self._eval_stream(split, size, bool(repeat_final_dataset), num_batches)

    def _train_stream(self, rng, start_step, size, num_batches):
        step = start_step
        while num_batches is None or step - start_step < num_batches:
            yield self.train_batch(rng, step, size)
            step += 1

    def _eval_stream(self, split, size, repeat, num_batches):
        batches = self._eval_batches(split, size)
        count = 0
        while True:
            for batch in batches:
                if num_batches is not None and count >= num_batches:
                    return
                yield batch
                count += 1
            if not repeat:
                return

    # ---------------------------------------------------------------- evaluation

    @abc.abstractmethod
    def _eval_arrays(self, split: str) -> dict[str, np.ndarray]:
        """Unpadded host arrays ``inputs``, ``targets``, ``weights`` of an eval split."""

    def _eval_batches(self, split: str, global_batch_size: int) -> list[dict[str, jax.Array]]:
        key = (split, global_batch_size)
        if key not in self._eval_batches_cache:
            arrays = self._eval_arrays(split)
            n = len(arrays["inputs"])
            padded = math.ceil(n / global_batch_size) * global_batch_size
            batches = []
            for start in range(0, padded, global_batch_size):
                batch = {}
                for name, value in arrays.items():
                    chunk = value[start : start + global_batch_size]
                    pad = global_batch_size - len(chunk)
                    if pad:
                        widths = [(0, pad)] + [(0, 0)] * (chunk.ndim - 1)
                        chunk = np.pad(chunk, widths)  # zeros: padding rows get weight 0
                    batch[name] = chunk
                batches.append(self.shard_batch(batch))
            self._eval_batches_cache[key] = batches
        return self._eval_batches_cache[key]

    def _eval_batch_sums(self, params, model_state, batch) -> dict[str, jax.Array]:
        """Weighted sums over one eval batch; ``num_valid`` is the denominator."""
        self._num_eval_traces += 1  # Python side effect: counts traces, not calls
        logits, _ = self.model_fn(
            params,
            batch,
            model_state,
            spec.ForwardPassMode.EVAL,
            rng=None,
            update_batch_norm=False,
        )
        weights = batch["weights"]
        loss = self.loss_fn(batch["targets"], logits, weights)
        correct = (jnp.argmax(logits, axis=-1) == batch["targets"]).astype(jnp.float32)
        return {
            "loss": loss["summed"],
            "accuracy": jnp.sum(correct * weights),
            "num_valid": loss["n_valid_examples"],
        }

    def _eval_split(self, split, global_batch_size, params, model_state) -> dict[str, float]:
        sums = [self._eval_step(params, model_state, b) for b in self._eval_batches(
            split, global_batch_size)]
        sums = jax.device_get(sums)
        totals = {k: math.fsum(float(s[k]) for s in sums) for k in sums[0]}
        denominator = totals.pop("num_valid")
        return {k: v / denominator for k, v in totals.items()}

    def eval_model(
        self,
        global_batch_size: int,
        params: Any,
        model_state: Any,
        rng: Any,
        data_dir: str | None,
        imagenet_v2_data_dir: str | None,
        global_step: int,
    ) -> dict[str, float]:
        """Evaluates on the eval-train subset, validation and test (runner-only, untimed).

        Args:
          global_batch_size: eval batch size over all devices (usually
            ``eval_batch_size``); one compile per distinct value.
          params: model params (any placement; replicated here).
          model_state: model state (likewise).
          rng: unused (evaluation is deterministic).
          data_dir: unused.
          imagenet_v2_data_dir: unused.
          global_step: unused.

        Returns:
          ``{'train/<m>', 'validation/<m>', 'validation/num_examples', 'test/<m>',
          'test/num_examples'}`` as Python floats/ints, ``<m>`` in
          ``('accuracy', 'loss')``; means are weighted by ``weights``.
        """
        del rng, data_dir, imagenet_v2_data_dir, global_step
        size = self._check_global_batch_size(global_batch_size)
        params, model_state = self.replicate((params, model_state))
        result: dict[str, float] = {}
        for split in EVAL_SPLITS:
            prefix = _SPLIT_PREFIX[split]
            metrics = self._eval_split(split, size, params, model_state)
            result.update({f"{prefix}/{k}": v for k, v in sorted(metrics.items())})
            if split != "eval_train":
                result[f"{prefix}/num_examples"] = self.num_examples(split)
        return result

    # ---------------------------------------------------------------- model

    @abc.abstractmethod
    def init_model_fn(self, rng: spec.RandomState) -> tuple[dict[str, Any], Any]:
        """Fresh ``(params, model_state)`` as plain single-device arrays."""

    @abc.abstractmethod
    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: Mapping[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState | None,
        update_batch_norm: bool,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[jax.Array, spec.ModelAuxiliaryState]:
        """Forward pass: ``(logits, new_model_state)``."""

    def _set_param_info(self, params: Mapping[str, Any]) -> None:
        self._param_shapes = param_shapes_of(params)
        self._param_types = infer_param_types(params)

    @property
    def param_shapes(self) -> Any:
        """Tree of :class:`~spec.ShapeTuple` like the params.

        Raises:
          ValueError: before the first ``init_model_fn``.
        """
        if self._param_shapes is None:
            raise ValueError(_NOT_INITIALISED.format(name="param_shapes"))
        return self._param_shapes

    @property
    def model_params_types(self) -> Any:
        """Tree of :class:`~spec.ParameterType` like the params (see :func:`infer_param_types`).

        Raises:
          ValueError: before the first ``init_model_fn``.
        """
        if self._param_types is None:
            raise ValueError(_NOT_INITIALISED.format(name="model_params_types"))
        return self._param_types

    def is_output_params(self, param_key: Any) -> bool:
        """Whether a param key belongs to the output layer.

        Args:
          param_key: a top-level params key (``'output'``), or a key path (a tuple
            of keys or of ``jax.tree_util.DictKey``) whose first entry is one.
        """
        if isinstance(param_key, Sequence) and not isinstance(param_key, str):
            if not param_key:
                return False
            param_key = param_key[0]
        param_key = getattr(param_key, "key", param_key)
        return param_key == self.output_param_key

    def output_activation_fn(self, logits_batch: jax.Array, framework: str = "jax") -> jax.Array:
        """Softmax over the last axis (the loss type is softmax cross-entropy).

        Raises:
          ValueError: for a framework other than ``'jax'``.
        """
        if framework != "jax":
            raise ValueError(f"these workloads are JAX only, got {framework=}")
        return jax.nn.softmax(logits_batch, axis=-1)

    def loss_fn(
        self,
        label_batch: jax.Array,
        logits_batch: jax.Array,
        mask_batch: jax.Array | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, jax.Array]:
        """Softmax cross-entropy over the last axis of the logits (no regulariser).

        Args:
          label_batch: integer class ids, shape ``logits_batch.shape[:-1]``.
          logits_batch: unnormalised scores ``(..., num_classes)``.
          mask_batch: optional weights of the same shape as ``label_batch``
            (``batch['weights']``); rows/tokens with weight 0 do not count.
          label_smoothing: mass spread uniformly over the classes.

        Returns:
          ``summed`` (scalar), ``n_valid_examples`` (scalar float32: the sum of the
          weights, or the number of labels without a mask) and ``per_example``
          (losses times weights, shape of ``label_batch``). The mean loss is
          ``summed / n_valid_examples``.

        Raises:
          ValueError: if the shapes do not line up.
        """
        if tuple(label_batch.shape) != tuple(logits_batch.shape[:-1]):
            raise ValueError(
                f"label_batch shape {label_batch.shape} must equal logits_batch shape "
                f"{logits_batch.shape} without its last (class) axis"
            )
        num_classes = logits_batch.shape[-1]
        log_probs = jax.nn.log_softmax(logits_batch.astype(jnp.float32), axis=-1)
        targets = jax.nn.one_hot(label_batch, num_classes, dtype=jnp.float32)
        if not (isinstance(label_smoothing, int | float) and label_smoothing == 0.0):
            targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
        per_example = -jnp.sum(targets * log_probs, axis=-1)
        if mask_batch is None:
            n_valid = jnp.asarray(per_example.size, jnp.float32)
        else:
            if tuple(mask_batch.shape) != tuple(per_example.shape):
                raise ValueError(
                    f"mask_batch shape {mask_batch.shape} must equal label_batch shape "
                    f"{label_batch.shape}"
                )
            mask = jnp.asarray(mask_batch, jnp.float32)
            # where, not only *: a padding row's NaN/inf loss must not leak into the sum.
            per_example = jnp.where(mask > 0, per_example * mask, 0.0)
            n_valid = jnp.sum(mask)
        return {"summed": jnp.sum(per_example), "n_valid_examples": n_valid, "per_example": per_example}

    # ---------------------------------------------------------------- targets, logging

    def _reached(self, eval_result: Mapping[str, Any], prefix: str, target: float) -> bool:
        key = f"{prefix}/{self.target_metric_name}"
        if key not in eval_result:
            raise ValueError(f"eval_result has no {key!r}; it has {sorted(eval_result)}")
        value = float(eval_result[key])
        if math.isnan(value):
            return False
        return value <= target if self.target_metric_lower_is_better else value >= target

    def has_reached_validation_target(self, eval_result: Mapping[str, Any]) -> bool:
        """Whether ``validation/<target_metric_name>`` meets ``validation_target_value``.

        Uses ``<=`` (lower is better) or ``>=``, as AlgoPerf's scoring does.
        """
        return self._reached(eval_result, "validation", self.validation_target_value)

    def has_reached_test_target(self, eval_result: Mapping[str, Any]) -> bool:
        """Whether ``test/<target_metric_name>`` meets ``test_target_value``."""
        return self._reached(eval_result, "test", self.test_target_value)

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        """Stores the runner's metrics logger in ``self.metrics_logger``."""
        self.metrics_logger = metrics_logger

    def metadata(self) -> dict[str, Any]:
        """Primitive facts about the workload for the run's ``meta_data`` file."""
        return {
            "workload": self.name,
            "num_train_examples": self.num_train_examples,
            "num_eval_train_examples": self.num_eval_train_examples,
            "num_validation_examples": self.num_validation_examples,
            "num_test_examples": self.num_test_examples,
            "eval_batch_size": self.eval_batch_size,
            "target_metric_name": self.target_metric_name,
            "target_metric_lower_is_better": self.target_metric_lower_is_better,
            "validation_target_value": self.validation_target_value,
            "test_target_value": self.test_target_value,
            "step_hint": self.step_hint,
            "max_allowed_runtime_sec": self.max_allowed_runtime_sec,
            "eval_period_time_sec": self.eval_period_time_sec,
            "loss_type": self.loss_type.name,
        }
