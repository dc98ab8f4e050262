"""Data-efficient LM: NAdamW, a sequence-length curriculum, random-LTD, a layer-token LR.

Random-LTD changes the model (layers ``random_ltd_layer_id`` of ``stdlib_lm`` run on a
random subset of tokens), which AlgoPerf's rules forbid a submission: this runs on
``python -m algoperf_reinit.runner`` only. See README.md beside it.
"""

from __future__ import annotations

import bisect
import json
import os
import pathlib
from typing import Any, NamedTuple

import absl.flags
import jax
import jax.numpy as jnp
import optax

from algoperf_reinit import optim
from algoperf_reinit.data_efficiency import (
    CurriculumScheduler,
    LayerTokenCounter,
    LayerTokenLRScheduleConfig,
    RandomLTDScheduler,
    ShapeBuckets,
    ShapeCounter,
    block_factory_from_config,
    curriculum_runs,
    joint_runs,
    layer_token_lr_table,
    monotone_runs,
    parse_data_efficiency_config,
    set_layer_tokens,
    step_layer_tokens,
    truncate_batch,
)
from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.submission import (
    harness_run_dir,
    replicated,
    resolve_hparams,
    training_complete_error,
)

CONFIG_PATH = pathlib.Path(__file__).with_name("ds_config.json")
BATCH_SIZES = {"stdlib_lm": 32, "stdlib_lm_4x256": 32}
SUMMARY_FILE = "random_ltd_summary.json"
_RUN_DIR = harness_run_dir(absl.flags.FLAGS, os.environ)


class Host(NamedTuple):
    """The run's host side: schedules, counters and the jitted step (no arrays)."""

    scheduler: RandomLTDScheduler  # DeepSpeed's kept length and consumed_layer_tokens
    starts: list[int]  # the joint schedule's runs: first step of each
    shapes_of_runs: list[tuple[int, int]]  # their bucketed (sequence length, kept length)
    counter: LayerTokenCounter  # layer tokens really computed: the LR clock
    shapes: ShapeCounter  # steps and compilations per (sequence length, kept length)
    train_step: Any
    seq_len: int
    budget: int
    run_dir: pathlib.Path

    def shape(self, global_step: int) -> tuple[int, int]:
        """The bucketed (sequence length, kept length) of a step (pure)."""
        return self.shapes_of_runs[bisect.bisect_right(self.starts, global_step) - 1]


def get_batch_size(workload_name):
    if workload_name not in BATCH_SIZES:
        raise ValueError(f"data_efficient_lm has no batch size for workload {workload_name!r}; "
                         f"known: {sorted(BATCH_SIZES)}")
    return BATCH_SIZES[workload_name]


def _train_step(workload, tx, factory):
    model = workload.model.clone(block_factory=factory)

    def train_step(params, opt_state, batch, rng, keep):
        def loss_fn(p):
            logits = model.clone(random_ltd_keep=keep).apply(
                {"params": p}, batch["inputs"], train=True, rngs={"random_ltd": rng})
            losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits,
                                      mask_batch=batch.get("weights"))
            return losses["summed"] / jnp.maximum(losses["n_valid_examples"], 1.0)

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(train_step, static_argnums=4, donate_argnums=(0, 1))


def _schedules(workload):
    """The curriculum's and random-LTD's schedules, zipped into one bucketed schedule."""
    config = parse_data_efficiency_config(CONFIG_PATH)
    ltd = config.data_routing.random_ltd
    if ltd.random_ltd_schedule.max_value != workload.seq_len:
        raise ValueError(f"{ltd.key_path}.random_ltd_schedule.max_value must be the "
                         f"workload's seq_len {workload.seq_len}, got "
                         f"{ltd.random_ltd_schedule.max_value}; edit {CONFIG_PATH.name}")
    curriculum = CurriculumScheduler(
        config.data_sampling.curriculum_learning.curriculum_metrics["seqlen_truncate"])
    scheduler = RandomLTDScheduler(ltd, min_clamp=True)
    # Global step g: curriculum step g + 1 (DeepSpeed's), random-LTD step g.
    ltd_runs = monotone_runs(lambda s: scheduler.get_value(s - 1), first_step=1,
                             max_value=workload.seq_len,
                             initial=ltd.random_ltd_schedule.min_value)
    runs = joint_runs(curriculum_runs(curriculum), ltd_runs)
    buckets = ShapeBuckets.from_runs(runs)  # one bound (8) for the pairs
    starts = [r.start - 1 for r in runs]
    shapes = [tuple(min(int(v), workload.seq_len) for v in buckets(r.value)) for r in runs]
    return ltd, scheduler, starts, shapes, len(buckets)


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del model_state
    hp = resolve_hparams(hyperparameters)
    config, scheduler, starts, shapes, bound = _schedules(workload)
    budget = max(int(workload.step_hint * hp.budget_fraction), 1)
    host = Host(scheduler, starts, shapes, LayerTokenCounter.from_config(config),
                ShapeCounter(bound=bound), None, workload.seq_len, budget,
                _RUN_DIR(workload, hyperparameters, rng))
    # The layer-token budget: what the bucketed schedule computes over the step budget.
    total = sum(step_layer_tokens(config.global_batch_size, *host.shape(s),
                                  config.total_layer_num, config.random_ltd_layer_num)
                for s in range(budget))
    lr = LayerTokenLRScheduleConfig(enabled=True, total_layer_tokens=total,
                                    warmup_layer_tokens=int(hp.warmup_factor * total))
    tx = optim.nadamw(layer_token_lr_table(lr, hp.learning_rate), b2=hp.beta2,
                      weight_decay=hp.weight_decay, one_minus_beta1=hp.one_minus_beta1,
                      clock="layer_tokens")
    host = host._replace(train_step=_train_step(workload, tx, block_factory_from_config(config)))
    # Replicated before the first step, or step 0 compiles a second time.
    return jax.device_put(tx.init(jax.device_put(model_params, replicated())), replicated()), host


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results,
                  global_step, rng, train_state=None):
    del workload, current_params_types, hyperparameters, loss_type, eval_results, train_state
    opt_state, host = optimizer_state
    if global_step >= host.budget:
        raise training_complete_error()(f"data_efficient_lm: the budget of {host.budget} "
                                        "steps is over")
    host.scheduler.update_seq(global_step)  # DeepSpeed's consumed_layer_tokens
    seq, kept = host.shape(global_step)
    if batch["inputs"].shape[1] != seq:
        raise ValueError(f"batch length {batch['inputs'].shape[1]} at step {global_step}, "
                         f"expected {seq}: the batch must come from data_selection")
    keep = None if kept >= seq else kept
    opt_state = set_layer_tokens(opt_state, host.counter.layer_tokens)  # before this step
    params, opt_state = jax.device_put((current_param_container, opt_state), replicated())
    params, opt_state = host.train_step(params, opt_state, batch, rng, keep)
    host.counter.update(global_step, seq_len=seq, kept=keep,
                        batch_size=batch["inputs"].shape[0])
    host.shapes.record_step((seq, kept))
    host.shapes.observe_cache_size((seq, kept), host.train_step._cache_size())
    return (opt_state, host), params, model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng):
    del workload, current_params_types, hyperparameters, loss_type, eval_results
    del global_step, rng
    host = optimizer_state[1]
    host.run_dir.mkdir(parents=True, exist_ok=True)
    (host.run_dir / SUMMARY_FILE).write_text(json.dumps(summary(optimizer_state), indent=1))
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    del workload, current_param_container, model_state, hyperparameters, rng
    seq, _ = optimizer_state[1].shape(global_step)
    return truncate_batch(next(input_queue), seq)  # the curriculum's length


def run_artifacts():
    """The file this submission writes into the run directory (our runner's hook)."""
    return [RunArtifact(SUMMARY_FILE)]


def summary(optimizer_state) -> dict[str, Any]:
    """Compilations per kept length and both layer-token counts (written at each eval)."""
    _, host = optimizer_state
    return {"shapes": host.shapes.summary(), "layer_tokens": host.counter.layer_tokens,
            "deepspeed_consumed_layer_tokens": host.scheduler.state.consumed_layer_tokens}
