"""The bundled workloads' base class: the AlgoPerf v0.6 JAX ``Workload`` interface.

:class:`BaseWorkload` implements the part of AlgoPerf's ``Workload`` that a
submission and a runner use (``ALGOPERF_API.md``), with everything that does not
depend on the data or the model, built from one module per concept:
:mod:`~algoperf_reinit_workloads.sharding` (the ``'batch'`` mesh),
:mod:`~algoperf_reinit_workloads.stream` (the step-indexed training stream:
``_build_input_queue(..., start_step=k)`` resumes at step ``k``),
:mod:`~algoperf_reinit_workloads.evaluation` (padded batches, weighted sums, one
compile per eval batch size), :mod:`~algoperf_reinit_workloads.param_types`
(``param_shapes``, ``model_params_types``) and
:mod:`~algoperf_reinit_workloads.losses`; plus :meth:`~BaseWorkload.model_fn`
with AlgoPerf's signature, the targets and the metrics logger hook.

Subclasses provide the data (``train_examples``, ``_eval_arrays``), the model
(``init_model_fn``, ``_forward``) and the constants (targets, budgets).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import jax
import numpy as np
from algoperf_reinit_workloads import _validation as v
from algoperf_reinit_workloads import evaluation, losses, sharding, spec, stream
from algoperf_reinit_workloads.evaluation import EVAL_SPLITS
from algoperf_reinit_workloads.param_types import infer_param_types, param_shapes_of
from jax.sharding import Mesh, NamedSharding

__all__ = ["EVAL_SPLITS", "BaseWorkload", "infer_param_types", "mode_is_train", "param_shapes_of"]


_NOT_INITIALISED = (
    "{name} is only known after the model is built: call workload.init_model_fn(rng) "
    "first (AlgoPerf's runner does so before init_optimizer_state)."
)


def mode_is_train(mode: Any) -> bool:
    """Whether a forward-pass mode is ``TRAIN`` (any enum with members ``TRAIN``/``EVAL``).

    Compared by name, so AlgoPerf's own ``ForwardPassMode`` works too.

    Raises:
      TypeError: for a value without a ``name`` (e.g. the string ``'train'``).
      ValueError: for a mode named neither ``TRAIN`` nor ``EVAL``.
    """
    name = getattr(mode, "name", None)
    if not isinstance(name, str):
        raise v.type_error("mode", mode, "ForwardPassMode.TRAIN or .EVAL")
    if name not in ("TRAIN", "EVAL"):
        raise v.value_error("mode", mode, "ForwardPassMode.TRAIN or .EVAL")
    return name == "TRAIN"


# ------------------------------------------------------------------------- workload


class BaseWorkload(abc.ABC):
    """Workload base class: sharding, step-indexed training data, eval and targets.

    Subclass contract: set the class constants below, call ``super().__init__()``,
    and implement :meth:`train_examples`, :meth:`_eval_arrays`,
    :meth:`init_model_fn` (calling :meth:`_set_param_info`) and :meth:`_forward`.
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
        self._eval_batch_size = v.integer("eval_batch_size", eval_batch_size, minimum=1)
        self._param_shapes: Any = None
        self._param_types: Any = None
        self.metrics_logger: Any = None
        self._mesh: Mesh | None = None
        self._eval_batches_cache: dict[tuple[str, int], list[dict[str, jax.Array]]] = {}
        self._permutations: stream.EpochPermutations | None = None
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
        return counts[v.choice("split", split, sorted(counts))]

    # ---------------------------------------------------------------- sharding

    @property
    def mesh(self) -> Mesh:
        """The 1-D device mesh ``Mesh(jax.devices(), ('batch',))`` (built on first use)."""
        if self._mesh is None:
            self._mesh = sharding.batch_mesh()
        return self._mesh

    @property
    def batch_sharding(self) -> NamedSharding:
        """``NamedSharding(mesh, P('batch'))``: leading axis split over all devices."""
        return sharding.batch_sharding(self.mesh)

    @property
    def replicated_sharding(self) -> NamedSharding:
        """``NamedSharding(mesh, P())``: a full copy on every device."""
        return sharding.replicated_sharding(self.mesh)

    def replicate(self, tree: Any) -> Any:
        """Places every leaf of ``tree`` on all devices (a no-op if already there)."""
        return jax.device_put(tree, self.replicated_sharding)

    def shard_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Turns a host batch into global arrays sharded on the leading axis.

        See :func:`~algoperf_reinit_workloads.sharding.shard_batch`.

        Raises:
          ValueError: if the leading dimension is not divisible by the device count.
        """
        return sharding.shard_batch(batch, self.mesh)

    def _check_global_batch_size(self, global_batch_size: Any) -> int:
        return sharding.check_global_batch_size(global_batch_size, self.mesh)

    # ---------------------------------------------------------------- training data

    @abc.abstractmethod
    def train_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Host arrays ``inputs``, ``targets``, ``weights`` of training examples ``indices``."""

    def train_indices(self, data_rng: Any, step: int, global_batch_size: int) -> np.ndarray:
        """Indices of the training examples in batch ``step`` of the stream for ``data_rng``.

        See :meth:`~algoperf_reinit_workloads.stream.EpochPermutations.indices`
        (int64, shape ``(global_batch_size,)``; ``TypeError``/``ValueError`` for
        bad arguments).
        """
        if self._permutations is None:  # num_train_examples is known once the data is in
            self._permutations = stream.EpochPermutations(self.num_train_examples)
        return self._permutations.indices(data_rng, step, global_batch_size)

    def train_batch(self, data_rng: Any, step: int, global_batch_size: int) -> dict[str, jax.Array]:
        """Training batch ``step`` of the stream for ``data_rng``, sharded on ``'batch'``.

        A pure function of its arguments (see :meth:`train_indices`). With several
        processes each one loads only the rows that live on its own devices
        (:func:`~algoperf_reinit_workloads.sharding.shard_local_batch`).

        Returns:
          Dict with ``inputs``, ``targets`` and ``weights`` (all ones) as global arrays.
        """
        size = self._check_global_batch_size(global_batch_size)
        indices = self.train_indices(data_rng, step, size)
        if jax.process_count() == 1:
            return self.shard_batch(self.train_examples(indices))
        rows = sharding.local_rows(size, self.mesh)  # each process loads only its own rows
        return sharding.shard_local_batch(self.train_examples(indices[rows]), self.mesh, size)

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
          TypeError: for sizes or a step that are not ints, or a split that is not
            a string.
          ValueError: for an unknown split or bad sizes (raised at the call, not
            on the first ``next``).
        """
        del data_dir, cache
        size = self._check_global_batch_size(global_batch_size)
        if num_batches is not None:
            num_batches = v.integer("num_batches", num_batches, minimum=1)
        if split == "train":
            start = v.integer("start_step", start_step, minimum=0)
            self.train_indices(data_rng, start, size)  # validates the key early
            return stream.train_stream(lambda step: self.train_batch(data_rng, step, size),
                                       start, num_batches)
        v.choice("split", split, ("train", *EVAL_SPLITS))
        if start_step:
            raise v.value_error("start_step", start_step, "0 for an eval split",
                                fix="start_step applies to the train split only")
        return stream.eval_stream(self._eval_batches(split, size), bool(repeat_final_dataset),
                                  num_batches)

    # ---------------------------------------------------------------- evaluation

    @abc.abstractmethod
    def _eval_arrays(self, split: str) -> dict[str, np.ndarray]:
        """Unpadded host arrays ``inputs``, ``targets``, ``weights`` of an eval split."""

    def _eval_batches(self, split: str, global_batch_size: int) -> list[dict[str, jax.Array]]:
        key = (split, global_batch_size)
        if key not in self._eval_batches_cache:
            self._eval_batches_cache[key] = [
                self.shard_batch(batch)
                for batch in evaluation.padded_batches(self._eval_arrays(split),
                                                       global_batch_size)]
        return self._eval_batches_cache[key]

    def _eval_batch_sums(self, params, model_state, batch) -> dict[str, jax.Array]:
        """Weighted sums over one eval batch (:func:`~evaluation.batch_sums`)."""
        self._num_eval_traces += 1  # Python side effect: counts traces, not calls
        return evaluation.batch_sums(self.model_fn, self.loss_fn, params, model_state, batch)

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
            prefix = evaluation.SPLIT_PREFIX[split]
            metrics = evaluation.split_means([self._eval_step(params, model_state, b)
                                              for b in self._eval_batches(split, size)])
            result.update({f"{prefix}/{k}": v for k, v in sorted(metrics.items())})
            if split != "eval_train":
                result[f"{prefix}/num_examples"] = self.num_examples(split)
        return result

    # ---------------------------------------------------------------- model

    @abc.abstractmethod
    def init_model_fn(self, rng: spec.RandomState) -> tuple[dict[str, Any], Any]:
        """Fresh ``(params, model_state)`` as plain single-device arrays."""

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
        """Forward pass (AlgoPerf's signature): ``(logits, new_model_state)``.

        ``mode`` is ``ForwardPassMode.TRAIN`` or ``.EVAL`` (any enum with those
        names, see :func:`mode_is_train`); the other arguments, and any further
        ones (``dropout_rate``, ...), are the workload's :meth:`_forward`'s.
        """
        return self._forward(params, augmented_and_preprocessed_input_batch, model_state,
                             mode_is_train(mode), rng, update_batch_norm, *args, **kwargs)

    @abc.abstractmethod
    def _forward(self, params: spec.ParameterContainer, batch: Mapping[str, spec.Tensor],
                 model_state: spec.ModelAuxiliaryState, train: bool,
                 rng: spec.RandomState | None, update_batch_norm: bool, *args: Any,
                 **kwargs: Any) -> tuple[jax.Array, spec.ModelAuxiliaryState]:
        """The model's forward pass, ``train`` read from :meth:`model_fn`'s ``mode``."""

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
          ValueError: for a framework other than ``'jax'`` (``TypeError`` for a non-string).
        """
        v.choice("framework", framework, ("jax",), fix="these workloads are JAX only")
        return jax.nn.softmax(logits_batch, axis=-1)

    def loss_fn(
        self,
        label_batch: jax.Array,
        logits_batch: jax.Array,
        mask_batch: jax.Array | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, jax.Array]:
        """Softmax cross-entropy over the last axis of the logits (no regulariser).

        See :func:`~algoperf_reinit_workloads.losses.softmax_cross_entropy`: returns
        ``summed``, ``n_valid_examples`` and ``per_example``; the mean loss is
        ``summed / n_valid_examples``.

        Raises:
          ValueError: if the shapes do not line up.
        """
        return losses.softmax_cross_entropy(label_batch, logits_batch, mask_batch,
                                            label_smoothing)

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
