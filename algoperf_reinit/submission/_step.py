"""The jitted, sharded train step of our submissions.

AlgoPerf v0.6 runs every workload with ``jax.jit`` and ``NamedSharding`` on a 1-D
mesh named ``'batch'``: parameters, model state and optimizer state replicated,
batches sharded on their leading axis. The step below is compiled once per run
(it keeps the model state's leaf shapes, see :func:`keep_model_state_shapes`):
the learning rate comes from the cycle table inside the optimizer state, and resets
and early stops change only array values, never shapes or shardings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "StepOutput",
    "batch_mesh",
    "batch_sharded",
    "clip_by_global_norm",
    "keep_model_state_shapes",
    "make_train_step",
    "replicated",
    "train_mode",
    "training_complete_error",
]


def _spec_module() -> Any:
    """AlgoPerf's ``spec`` module when it is installed, else our workloads' restatement.

    Imported lazily: the library must import without AlgoPerf.
    """
    for name in ("algoperf.spec", "algoperf_reinit_workloads.spec"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        "neither algoperf nor algoperf_reinit_workloads is installed; one of them provides "
        "ForwardPassMode"
    )


def train_mode(workload: Any) -> Any:
    """``ForwardPassMode.TRAIN`` of the spec module the workload was written against."""
    module = importlib.import_module(type(workload).__module__)
    spec = getattr(module, "spec", None)
    if spec is None or not hasattr(spec, "ForwardPassMode"):
        spec = _spec_module()
    return spec.ForwardPassMode.TRAIN


def training_complete_error() -> type[Exception]:
    """AlgoPerf's ``TrainingCompleteError`` (or our workloads' restatement)."""
    return _spec_module().TrainingCompleteError


def batch_mesh() -> Mesh:
    """The 1-D mesh over every device, axis ``'batch'`` (as AlgoPerf builds it)."""
    return Mesh(np.asarray(jax.devices()), ("batch",))


def replicated() -> NamedSharding:
    """``NamedSharding(mesh, P())``."""
    return NamedSharding(batch_mesh(), P())


def batch_sharded() -> NamedSharding:
    """``NamedSharding(mesh, P('batch'))``."""
    return NamedSharding(batch_mesh(), P("batch"))


class StepOutput(NamedTuple):
    """What one train step returns."""

    params: Any
    model_state: Any
    opt_state: Any
    loss: jax.Array  # shape=(), dtype=float32; mean training loss of the batch
    grad_norm: jax.Array  # shape=(), dtype=float32; global norm before clipping
    # shape=(), dtype=bool; loss or gradient norm not finite (sticky with track_non_finite)
    non_finite: jax.Array


def keep_model_state_shapes(new: Any, old: Any) -> Any:
    """``new`` model state with each leaf reshaped to ``old``'s shape where only the
    shape differs (same size).

    AlgoPerf v0.6's librispeech batch norm (conformer, deepspeech) stores its running
    statistics with ``keepdims`` shapes, ``(1, 1, dim)`` after the first step instead of
    the ``(dim,)`` it was built with, and its ViT returns ``None`` for the ``{}`` model
    state it was built with; either would compile the train step a second time at
    step 1. Values are unchanged: a state without arrays keeps ``old``'s structure;
    another structure with arrays is returned as it is.
    """
    if not jax.tree.leaves(new) and not jax.tree.leaves(old):
        return old

    def fix(n: Any, o: Any) -> Any:
        shape_n, shape_o = getattr(n, "shape", None), getattr(o, "shape", None)
        if shape_n is None or shape_o is None or shape_n == shape_o:
            return n
        return n.reshape(shape_o) if n.size == int(np.prod(shape_o)) else n

    try:
        return jax.tree.map(fix, new, old)
    except (ValueError, TypeError):  # another tree structure: not ours to change
        return new


def clip_by_global_norm(grads: Any, grad_clip: jax.typing.ArrayLike) -> tuple[Any, jax.Array]:
    """Scales ``grads`` down to global norm ``grad_clip`` if it is exceeded (jittable).

    Args:
      grads: a pytree of gradients.
      grad_clip: the threshold, a traced scalar; ``<= 0`` disables clipping (so that
        one compiled step serves every value).

    Returns:
      ``(clipped grads, global norm before clipping)`` (the norm in float32).
    """
    grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                             for g in jax.tree.leaves(grads)))
    scale = jnp.where((grad_clip > 0) & (grad_norm > grad_clip),
                      grad_clip / jnp.maximum(grad_norm, 1e-12), 1.0)
    return jax.tree.map(lambda g: (g * scale).astype(g.dtype), grads), grad_norm


def make_train_step(
    workload: Any,
    tx: optax.GradientTransformation,
    *,
    use_dropout_arg: bool,
    track_non_finite: bool = False,
) -> Callable[..., StepOutput]:
    """Builds the jitted train step for one run.

    Args:
      workload: the AlgoPerf workload (``model_fn``, ``loss_fn``).
      tx: the optimizer (holds the cycle table in its state).
      use_dropout_arg: pass ``dropout_rate`` to ``model_fn`` (when the
        hyperparameters set one); otherwise the workload's default applies.
      track_non_finite: the step takes a 9th argument, the run's ``non_finite`` flag
        (a bool scalar), and returns it OR-ed with this step's (so a divergence is
        remembered on the device with no host sync per step).

    Returns:
      ``step(params, model_state, opt_state, batch, rng, label_smoothing,
      dropout_rate, grad_clip[, non_finite]) -> StepOutput``, jitted with replicated
      state, the batch sharded on ``'batch'`` and the state buffers donated.
      ``grad_clip <= 0`` disables clipping.
    """
    mode = train_mode(workload)

    def train_step(params, model_state, opt_state, batch, rng, label_smoothing, dropout_rate,
                   grad_clip, non_finite=False):
        def loss_fn(p):
            kwargs = {"dropout_rate": dropout_rate} if use_dropout_arg else {}
            logits, new_model_state = workload.model_fn(
                p, batch, model_state, mode, rng, update_batch_norm=True, **kwargs
            )
            losses = workload.loss_fn(
                label_batch=batch["targets"], logits_batch=logits,
                mask_batch=batch.get("weights"), label_smoothing=label_smoothing,
            )
            loss = losses["summed"] / jnp.maximum(losses["n_valid_examples"], 1.0)
            return loss, new_model_state

        (loss, new_model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        new_model_state = keep_model_state_shapes(new_model_state, model_state)
        grads, grad_norm = clip_by_global_norm(grads, grad_clip)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        bad = jnp.logical_or(non_finite, ~(jnp.isfinite(loss) & jnp.isfinite(grad_norm)))
        return StepOutput(new_params, new_model_state, new_opt_state, loss, grad_norm, bad)

    rep, sharded = replicated(), batch_sharded()
    return jax.jit(
        train_step,  # compile events name it 'jit(train_step)'
        in_shardings=(rep, rep, rep, sharded, rep, rep, rep, rep) + ((rep,) if track_non_finite
                                                                     else ()),
        out_shardings=StepOutput(rep, rep, rep, rep, rep, rep),
        donate_argnums=(0, 1, 2),
    )
