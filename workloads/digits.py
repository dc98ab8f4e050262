"""``digits``: an MLP with batch norm on scikit-learn's bundled 8x8 handwritten digits.

Data: ``sklearn.datasets.load_digits()`` (1,797 images of 8x8 pixels with values
0..16, ten classes), read from the copy that ships inside scikit-learn — no
download. Split: ``np.random.RandomState(0).permutation(1797)`` (the legacy
generator, whose stream NumPy keeps fixed); its first 1,197 entries are train,
the next 300 validation, the last 300 test. Inputs are ``(x - mean) / std`` with
the scalar mean and standard deviation of the training pixels, shaped
``(8, 8, 1)`` float32; targets are int32 class ids; ``weights`` are float32.

Model: ``Dense → BatchNorm → ReLU → Dropout`` per hidden layer, then a
``Dense`` output layer named ``output``. The hidden ``Dense`` layers have no
bias (the batch norm's bias takes its role). ``model_state`` is
``{'batch_stats': ...}``: training mode normalises with batch statistics and,
with ``update_batch_norm=True``, updates the running averages (momentum 0.9:
the runs are short); evaluation mode uses the running averages.
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Mapping, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from algoperf_reinit_workloads import _validation as v
from algoperf_reinit_workloads import spec
from algoperf_reinit_workloads.base import BaseWorkload
from algoperf_reinit_workloads.layers import Dropout

__all__ = ["DigitsMLP", "DigitsWorkload"]

NUM_EXAMPLES = 1797
NUM_VALIDATION = 300
NUM_TEST = 300
NUM_TRAIN = NUM_EXAMPLES - NUM_VALIDATION - NUM_TEST  # 1197
NUM_CLASSES = 10
SPLIT_SEED = 0


class DigitsMLP(nn.Module):
    """MLP with batch norm and (rate-at-call-time) dropout.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      num_classes: number of output logits.
      bn_momentum: momentum of the batch-norm running averages.
    """

    hidden_sizes: Sequence[int] = (128, 128)
    num_classes: int = NUM_CLASSES
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool,
        use_running_average: bool,
        dropout_rate: jax.typing.ArrayLike = 0.0,
    ) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden_sizes):
            x = nn.Dense(width, use_bias=False, name=f"hidden_{i}")(x)
            x = nn.BatchNorm(
                use_running_average=use_running_average,
                momentum=self.bn_momentum,
                name=f"batchnorm_{i}",
            )(x)
            x = nn.relu(x)
            x = Dropout(name=f"dropout_{i}")(x, dropout_rate, deterministic=not train)
        return nn.Dense(self.num_classes, name="output")(x)


@functools.cache
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images ``(1797, 8, 8)`` float32 and labels int32, read-only, loaded once per process."""
    from sklearn.datasets import load_digits  # local import: sklearn is slow to import

    data = load_digits()
    images = np.asarray(data.images, dtype=np.float32)
    labels = np.asarray(data.target, dtype=np.int32)
    if images.shape != (NUM_EXAMPLES, 8, 8):
        raise RuntimeError(f"unexpected digits data of shape {images.shape}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


class DigitsWorkload(BaseWorkload):
    """Image classification on the 8x8 digits; target ``validation/accuracy >= 0.97``.

    Args:
      hidden_sizes: widths of the MLP's hidden layers.
      bn_momentum: batch-norm momentum.
      eval_batch_size: default global eval batch size.

    Example:
      >>> import jax
      >>> from algoperf_reinit_workloads import DigitsWorkload
      >>> workload = DigitsWorkload(hidden_sizes=(16,))
      >>> params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
      >>> sorted(params), sorted(model_state)
      (['batchnorm_0', 'hidden_0', 'output'], ['batch_stats'])
    """

    name = "digits"
    target_metric_name = "accuracy"
    target_metric_lower_is_better = False
    validation_target_value = 0.97
    test_target_value = 0.96
    step_hint = 2000
    max_allowed_runtime_sec = 300
    eval_period_time_sec = 2.0

    def __init__(
        self,
        *,
        hidden_sizes: Sequence[int] = (128, 128),
        bn_momentum: float = 0.9,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(eval_batch_size=eval_batch_size)
        hidden_sizes = tuple(v.integer(f"hidden_sizes[{i}]", h, minimum=1)
                             for i, h in enumerate(hidden_sizes))
        bn_momentum = v.in_range("bn_momentum", bn_momentum, 0.0, 1.0, high_open=True)
        self._model = DigitsMLP(hidden_sizes=hidden_sizes, bn_momentum=bn_momentum)
        self.hidden_sizes = hidden_sizes

        images, labels = _load_digits()
        self._raw_sha256 = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
        order = np.random.RandomState(SPLIT_SEED).permutation(NUM_EXAMPLES)
        self._split_indices = {
            "train": order[:NUM_TRAIN],
            "validation": order[NUM_TRAIN : NUM_TRAIN + NUM_VALIDATION],
            "test": order[NUM_TRAIN + NUM_VALIDATION :],
        }
        for indices in self._split_indices.values():
            indices.flags.writeable = False
        train_pixels = images[self._split_indices["train"]]
        self.train_mean = float(train_pixels.mean())
        self.train_stddev = float(train_pixels.std())
        inputs = ((images - self.train_mean) / self.train_stddev)[..., None]
        self._inputs = {k: inputs[v] for k, v in self._split_indices.items()}
        self._targets = {k: labels[v] for k, v in self._split_indices.items()}
        self._init = jax.jit(self._init_variables)

    # ------------------------------------------------------------------ data

    @property
    def split_indices(self) -> types.MappingProxyType[str, np.ndarray]:
        """Split name → indices into ``load_digits()`` order (read-only arrays)."""
        return types.MappingProxyType(self._split_indices)

    @property
    def num_train_examples(self) -> int:
        return NUM_TRAIN

    @property
    def num_eval_train_examples(self) -> int:
        return NUM_TRAIN  # the whole training set: it is tiny

    @property
    def num_validation_examples(self) -> int:
        return NUM_VALIDATION

    @property
    def num_test_examples(self) -> int:
        return NUM_TEST

    def train_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "inputs": self._inputs["train"][indices],
            "targets": self._targets["train"][indices],
            "weights": np.ones(len(indices), np.float32),
        }

    def _eval_arrays(self, split: str) -> dict[str, np.ndarray]:
        source = "train" if split == "eval_train" else split
        n = self.num_examples(split)
        return {
            "inputs": self._inputs[source][:n],
            "targets": self._targets[source][:n],
            "weights": np.ones(n, np.float32),
        }

    # ------------------------------------------------------------------ model

    def _init_variables(self, rng):
        variables = self._model.init(
            {"params": rng},
            jnp.zeros((1, 8, 8, 1), jnp.float32),
            train=False,
            use_running_average=True,
        )
        return flax.core.unfreeze(variables)

    def init_model_fn(self, rng: spec.RandomState) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fresh params and batch-norm state as plain single-device arrays.

        The caller replicates them (``jax.device_put(..., replicated_sharding)``)
        before its first jitted step. Also sets ``param_shapes`` and
        ``model_params_types``.

        Args:
          rng: a JAX PRNG key.

        Returns:
          ``(params, {'batch_stats': ...})``.
        """
        variables = dict(self._init(rng))
        params = variables.pop("params")
        self._set_param_info(params)
        return params, variables

    def _forward(self, params: spec.ParameterContainer, batch: Mapping[str, spec.Tensor],
                 model_state: spec.ModelAuxiliaryState, train: bool,
                 rng: spec.RandomState | None, update_batch_norm: bool,
                 use_running_average_bn: bool | None = None,
                 dropout_rate: jax.typing.ArrayLike = 0.0,
                 ) -> tuple[jax.Array, spec.ModelAuxiliaryState]:
        """Forward pass (``model_fn(params, batch, model_state, mode, rng, ...)``).

        Args:
          params: model params.
          batch: dict with ``inputs`` ``(B, 8, 8, 1)``.
          model_state: ``{'batch_stats': ...}``.
          train: whether ``model_fn``'s ``mode`` is ``ForwardPassMode.TRAIN``.
          rng: dropout key; needed in TRAIN mode when ``dropout_rate`` is not 0.
          update_batch_norm: return updated running averages (TRAIN mode).
          use_running_average_bn: override the batch-norm mode (default: running
            averages in EVAL, batch statistics in TRAIN), as AlgoPerf's BN workloads.
          dropout_rate: dropout after each hidden layer; default 0.0. A traced
            value does not cause recompiles.

        Returns:
          ``(logits (B, 10), new_model_state)``; the state is unchanged unless
          ``update_batch_norm``.
        """
        use_running_average = not train if use_running_average_bn is None else use_running_average_bn
        variables = {"params": params, **model_state}
        rngs = {"dropout": rng} if train and rng is not None else {}
        x = batch["inputs"]
        kwargs = dict(train=train, use_running_average=use_running_average, dropout_rate=dropout_rate)
        if use_running_average:
            return self._model.apply(variables, x, rngs=rngs, **kwargs), model_state
        # Batch statistics: flax updates the running averages as a side effect, so the
        # collection must be mutable; the update is kept only if asked for.
        logits, new_state = self._model.apply(
            variables, x, rngs=rngs, mutable=["batch_stats"], **kwargs
        )
        return logits, (dict(new_state) if update_batch_norm else model_state)

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta.update(
            data_source="sklearn.datasets.load_digits",
            data_sha256=self._raw_sha256,
            split_seed=SPLIT_SEED,
            train_mean=self.train_mean,
            train_stddev=self.train_stddev,
            hidden_sizes=list(self.hidden_sizes),
        )
        return meta
