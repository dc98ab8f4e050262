"""Data-efficient LM: NAdamW, two curricula, random-LTD and a layer-token LR.

The curricula are DeepSpeed's: ``vocabularyrarity`` through the sampler (our runner
trains on :func:`sample_source`'s batches of sample ids, the analyzer having read the
training set) and ``seqlen_truncate`` in ``data_selection``. Random-LTD changes the
model (layers ``random_ltd_layer_id`` of ``stdlib_lm`` run on a random subset of
tokens). AlgoPerf's rules forbid a submission both (reading the dataset, changing the
model): this runs on ``python -m algoperf_reinit.runner`` only. See README.md beside it.
"""

from __future__ import annotations

import bisect
import copy
import json
import os
import pathlib
import shutil
import tempfile
import warnings
import weakref
from typing import Any, NamedTuple

import absl.flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from algoperf_reinit import optim
from algoperf_reinit.data_efficiency import (
    CurriculumScheduler,
    DataAnalyzer,
    DeepSpeedDataSampler,
    DeviceDataset,
    LayerTokenCounter,
    MMapIndexedDataset,
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
    total_vocab_freq_metric,
    truncate_batch,
    vocab_rarity_metric,
)
from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.runner import SampleSource
from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table
from algoperf_reinit.submission import (
    clip_by_global_norm,
    harness_run_dir,
    replicated,
    resolve_hparams,
    training_complete_error,
)

CONFIG_PATH = pathlib.Path(__file__).with_name("ds_config.json")
BATCH_SIZES = {"stdlib_lm": 32, "stdlib_lm_4x256": 32}
SUMMARY_FILE = "random_ltd_summary.json"
TOKENS_FILE = "tokens.csv"  # one row per eval: what the steps so far consumed
TOKENS_COLUMNS = ("global_step", "tokens", "layer_tokens", "deepspeed_consumed_layer_tokens")
RARITY = "vocabularyrarity"  # the sampler's metric (its analysis is made per run)
VOCAB_SIZE = 256  # stdlib_lm's bytes
_RUN_DIR = harness_run_dir(absl.flags.FLAGS, os.environ)


class Host(NamedTuple):
    """The run's host side: schedules, counters and the jitted step (no arrays)."""

    scheduler: RandomLTDScheduler  # DeepSpeed's kept length and consumed_layer_tokens
    starts: list[int]  # the joint schedule's runs: first step of each
    shapes_of_runs: list[tuple[int, int]]  # their bucketed (sequence length, kept length)
    counter: LayerTokenCounter  # layer tokens really computed: the LR clock
    shapes: ShapeCounter  # steps and compilations per (sequence length, kept length)
    train_step: Any
    hparams: Any  # the resolved hyperparameters
    batch_size: int
    seq_len: int
    budget: int
    run_dir: pathlib.Path
    clock: str = "layer_tokens"  # of the learning rate: 'layer_tokens' or 'steps'

    def shape(self, global_step: int) -> tuple[int, int]:
        """The bucketed (sequence length, kept length) of a step (pure)."""
        return self.shapes_of_runs[bisect.bisect_right(self.starts, global_step) - 1]

    def tokens(self, global_step: int) -> int:
        """Tokens the steps ``0 .. global_step - 1`` trained on (pure)."""
        return self.batch_size * sum(self.shape(s)[0] for s in range(global_step))


def get_batch_size(workload_name):
    if workload_name not in BATCH_SIZES:
        raise ValueError(f"data_efficient_lm has no batch size for workload {workload_name!r}; "
                         f"known: {sorted(BATCH_SIZES)}")
    return BATCH_SIZES[workload_name]


def _train_step(workload, tx, factory):
    model = workload.model.clone(block_factory=factory)

    def train_step(params, opt_state, batch, rng, label_smoothing, dropout_rate, grad_clip,
                   keep):
        ltd_rng, dropout_rng = jax.random.split(rng)

        def loss_fn(p):
            logits = model.clone(random_ltd_keep=keep).apply(
                {"params": p}, batch["inputs"], dropout_rate=dropout_rate, train=True,
                rngs={"random_ltd": ltd_rng, "dropout": dropout_rng})
            losses = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits,
                                      mask_batch=batch.get("weights"),
                                      label_smoothing=label_smoothing)
            return losses["summed"] / jnp.maximum(losses["n_valid_examples"], 1.0)

        grads, _ = clip_by_global_norm(jax.grad(loss_fn)(params), grad_clip)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    # label_smoothing, dropout_rate and grad_clip are traced (one compilation for any
    # value); the kept length is static (one compilation per length).
    return jax.jit(train_step, static_argnums=7, donate_argnums=(0, 1))


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


def layer_token_budget(config, host: Host) -> int:
    """The layer tokens the bucketed schedule computes over the step budget."""
    return sum(step_layer_tokens(config.global_batch_size, *host.shape(s),
                                 config.total_layer_num, config.random_ltd_layer_num)
               for s in range(host.budget))


def planned_layer_tokens(workload, steps: int) -> int:
    """The layer tokens this config's bucketed schedule computes over ``steps`` steps.

    ``ds_config.json``'s ``layer_token_lr_schedule.total_layer_tokens`` is this over
    the workload's ``step_hint`` (a test pins it).
    """
    ltd, scheduler, starts, shapes, bound = _schedules(workload)
    host = Host(scheduler, starts, shapes, None, ShapeCounter(bound=bound), None, None,
                ltd.global_batch_size, workload.seq_len, steps, pathlib.Path())
    return layer_token_budget(ltd, host)


def _learning_rate(config, host: Host, hp) -> tuple[Any, str]:
    """The LR table and its clock, as ``layer_token_lr_schedule`` says.

    Enabled: DeepSpeed's block as given (linear warmup over ``warmup_layer_tokens``,
    then cosine to 0 at ``total_layer_tokens``) on the layer-token clock; a warning
    if the step budget computes another total. Disabled: the step clock, as
    ``nadamw_baseline`` (``warmup_factor`` of the budget, cosine to 0 at its end).
    """
    block = config.layer_token_lr_schedule
    if not block.enabled:
        return build_cycle_table(ScheduleConfig(), host.budget, hp.learning_rate,
                                 hp.warmup_factor), "steps"
    total = layer_token_budget(config, host)
    if abs(total - block.total_layer_tokens) > 0.01 * total:
        warnings.warn(f"{block.key_path}.total_layer_tokens is {block.total_layer_tokens}, "
                      f"but the {host.budget} steps of the budget compute {total}: the "
                      "learning rate will not end at the budget", stacklevel=2)
    return layer_token_lr_table(block, hp.learning_rate), "layer_tokens"


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del model_state
    hp = resolve_hparams(hyperparameters)
    config, scheduler, starts, shapes, bound = _schedules(workload)
    budget = max(int(workload.step_hint * hp.budget_fraction), 1)
    host = Host(scheduler, starts, shapes, LayerTokenCounter.from_config(config),
                ShapeCounter(bound=bound), None, hp, config.global_batch_size,
                workload.seq_len, budget,
                _RUN_DIR(workload, hyperparameters, rng))
    table, clock = _learning_rate(config, host, hp)
    tx = optim.nadamw(table, b2=hp.beta2, weight_decay=hp.weight_decay,
                      one_minus_beta1=hp.one_minus_beta1, clock=clock)
    host = host._replace(train_step=_train_step(workload, tx, block_factory_from_config(config)),
                         clock=clock)
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
    _catch_up(host, global_step)  # a resumed run: the steps a fresh host has not counted
    host.scheduler.update_seq(global_step)  # DeepSpeed's consumed_layer_tokens
    seq, kept = host.shape(global_step)
    if batch["inputs"].shape[:2] != (host.batch_size, seq):
        raise ValueError(f"batch shape {batch['inputs'].shape[:2]} at step {global_step}, "
                         f"expected {(host.batch_size, seq)} (ds_config.json's batch size, the "
                         "curriculum's length): the batch must come from data_selection")
    keep = None if kept >= seq else kept
    if host.clock == "layer_tokens":  # the LR clock: layer tokens before this step
        opt_state = set_layer_tokens(opt_state, host.counter.layer_tokens)
    params, opt_state = jax.device_put((current_param_container, opt_state), replicated())
    hp = host.hparams
    params, opt_state = host.train_step(
        params, opt_state, batch, rng, np.float32(hp.label_smoothing),
        np.float32(hp.dropout_rate or 0.0), np.float32(hp.grad_clip or 0.0), keep)
    _count(host, global_step)
    host.shapes.observe_cache_size((seq, kept), host.train_step._cache_size())
    return (opt_state, host), params, model_state


def _count(host: Host, step: int) -> None:
    """Counts step ``step``: its layer tokens (the LR clock) and its shape."""
    seq, kept = host.shape(step)
    host.counter.update(step, seq_len=seq, kept=None if kept >= seq else kept,
                        batch_size=host.batch_size)
    host.shapes.record_step((seq, kept))


def _catch_up(host: Host, global_step: int) -> None:
    """Counts steps ``0 .. global_step - 1`` that this host has not seen.

    The counters are host-side and a resumed run starts with a fresh host (the
    runner restores element 0 of the optimizer state); every step's shape is a pure
    function of its number, so the counts (and with them the layer-token LR clock)
    continue as if the run had not stopped. Compilations are this process's.
    """
    for step in range(host.counter.state_dict()["current_steps"] + 1, global_step):
        host.scheduler.update_seq(step)
        _count(host, step)


def prepare_for_eval(workload, current_param_container, current_params_types, model_state,
                     hyperparameters, loss_type, optimizer_state, eval_results, global_step,
                     rng):
    del workload, current_params_types, hyperparameters, loss_type, eval_results
    del rng
    host = optimizer_state[1]
    host.run_dir.mkdir(parents=True, exist_ok=True)
    info = summary(optimizer_state)
    (host.run_dir / SUMMARY_FILE).write_text(json.dumps(info, indent=1))
    tokens = host.run_dir / TOKENS_FILE
    row = (global_step, host.tokens(global_step), info["layer_tokens"],
           info["deepspeed_consumed_layer_tokens"])
    with tokens.open("a") as f:
        if f.tell() == 0:
            f.write(",".join(TOKENS_COLUMNS) + "\n")
        f.write(",".join(map(str, row)) + "\n")
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    del workload, current_param_container, model_state, hyperparameters, rng
    seq, _ = optimizer_state[1].shape(global_step)
    return truncate_batch(next(input_queue), seq)  # the curriculum's length


def _analyze(dataset, save_path: pathlib.Path) -> None:
    """DeepSpeed's two analyzer passes: byte counts, then each window's vocabulary rarity."""
    freq = "total_vocab_freq"
    DataAnalyzer(dataset, metric_names=[freq],
                 metric_functions=[total_vocab_freq_metric(VOCAB_SIZE, tokens_key="inputs")],
                 metric_types=["accumulate_value_over_samples"], metric_dtypes=[np.int64],
                 save_path=str(save_path), batch_size=1024, batch_by_slice=True).run_map_reduce()
    counts = MMapIndexedDataset(DataAnalyzer.output_prefix(save_path, freq, "metric_value"))[0]
    DataAnalyzer(dataset, metric_names=[RARITY],
                 metric_functions=[vocab_rarity_metric(counts, tokens_key="inputs")],
                 metric_types=["single_value_per_sample"], metric_dtypes=[np.int64],
                 save_path=str(save_path), batch_size=1024, batch_by_slice=True).run_map_reduce()


def sample_source(workload, global_batch_size, data_rng):
    """The vocabulary-rarity curriculum: our runner trains on these batches (its hook).

    Analyses the workload's ``training_dataset()`` (a few seconds, before the clock
    starts, as DeepSpeed's offline analysis is) into a temporary directory that lives
    as long as the source, and draws global batches of window ids with
    ``DeepSpeedDataSampler`` from ``ds_config.json`` (its index and cluster paths are
    relative to that directory; its ``seed`` is mixed with the trial's ``data_rng`` so
    that trials of different seeds see different orders). ``DeviceDataset`` gathers
    the windows on the device.
    """
    dataset = workload.training_dataset()
    work = pathlib.Path(tempfile.mkdtemp(prefix="data_efficient_lm_"))
    _analyze(dataset, work)
    config = copy.deepcopy(json.loads(CONFIG_PATH.read_text()))
    de = config["data_efficiency"]
    de["seed"] = int(np.random.SeedSequence(
        [int(de.get("seed", 1234)), int(jax.random.randint(data_rng, (), 0, 2**31 - 1))]
    ).generate_state(1)[0] % 2**31)
    sampler = DeepSpeedDataSampler(config, len(dataset), global_batch_size, 0, 1, 1,
                                   base_path=work)
    source = SampleSource(sampler, DeviceDataset(dataset[:]))
    weakref.finalize(source, shutil.rmtree, work, True)
    return source


def run_artifacts():
    """The file this submission writes into the run directory (our runner's hook)."""
    return [RunArtifact(SUMMARY_FILE), RunArtifact(TOKENS_FILE, step_column="global_step")]


def summary(optimizer_state) -> dict[str, Any]:
    """Compilations per kept length and both layer-token counts (written at each eval)."""
    _, host = optimizer_state
    return {"shapes": host.shapes.summary(), "layer_tokens": host.counter.layer_tokens,
            "deepspeed_consumed_layer_tokens": host.scheduler.state.consumed_layer_tokens}
