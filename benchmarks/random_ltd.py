"""random-LTD's speed: one transformer block with dropped tokens, and a whole bucketed run.

Side by side in one process:

1. **Block**, forward + backward (gradients of params and input), causal mask: the
   dense block; *masking* (the block on all tokens, the dropped ones masked out of
   attention and their outputs replaced by the input: DeepSpeed's semantics with no
   savings); and :class:`RandomLTDBlock` (gather, block, scatter) at keep 25/50/75 %.
   Each call is timed to ``block_until_ready`` with a fresh key, the variants
   alternating within each repeat; medians. The FLOP ratio dense/kept counts the
   matmuls with attention's quadratic term: per sample ``S * 24 D^2 + 4 S^2 D`` for the
   dense block (4 ``D x D`` projections, a ``D x 4D`` MLP, ``Q K^T`` and ``A V`` over all
   ``S^2`` pairs) and the same at ``r``. Target (full mode): the speedup at 50 % is
   >= 0.8x the FLOP ratio.
2. **Train step** of a 4-layer ``TransformerLM`` (ids 1 and 2 drop tokens) with Adam
   over a scheduled run: DeepSpeed's ``fixed_linear`` kept lengths bucketed to at most
   8 shapes (:class:`ShapeBuckets`) versus the dense model, the same steps; time per
   step after compilation, compile time, compilations per shape.

Usage (from the repository root)::

  PYTHONPATH=. python benchmarks/random_ltd.py [--quick]

``--quick`` (about 10 s) uses a smaller block and run and only reports; full mode exits 1
when the target is missed.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import _report
import jax
import jax.numpy as jnp
import numpy as np
import optax
from algoperf_reinit_workloads.transformer import DecoderBlock, TransformerLM, causal_mask

from algoperf_reinit.data_efficiency import (
    RandomLTDBlock,
    RandomLTDScheduler,
    ShapeBuckets,
    ShapeCounter,
    monotone_runs,
    random_ltd_block_factory,
)

KEEPS = (0.25, 0.5, 0.75)
TARGET = 0.8  # speedup at keep 50 % / FLOP ratio, full mode


class Mode(NamedTuple):
    """Benchmark sizes."""

    name: str
    batch: int
    seq: int
    width: int
    heads: int
    repeats: int
    run_batch: int  # part 2: the train step
    run_seq: int
    run_width: int
    run_steps: int
    run_min: int  # kept length at step 0
    run_require: int  # steps from run_min to run_seq
    run_per_step: int


FULL = Mode("full", batch=8, seq=512, width=256, heads=4, repeats=15, run_batch=8,
            run_seq=256, run_width=128, run_steps=200, run_min=64, run_require=150,
            run_per_step=16)
QUICK = Mode("quick", batch=2, seq=128, width=64, heads=4, repeats=3, run_batch=2,
             run_seq=64, run_width=32, run_steps=6, run_min=32, run_require=3,
             run_per_step=16)


def flops(tokens: int, width: int) -> int:
    """Multiply-add FLOPs of one sample's block forward at ``tokens`` tokens."""
    return tokens * 24 * width * width + 4 * tokens * tokens * width


class MaskedBlock(DecoderBlock):
    """Random-LTD by masking: every token computed, the dropped ones discarded."""

    def __call__(self, x, mask, *, keep_mask, **kwargs):
        attend = mask & keep_mask[:, None, None, :]
        y = super().__call__(x, attend, **kwargs)
        return jnp.where(keep_mask[..., None], y, x)


def _grad_fn(apply: Callable[..., jax.Array]) -> Callable:
    def loss(params, x, key):
        return jnp.sum(apply(params, x, key) ** 2)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def block_variants(mode: Mode, mask: jax.Array) -> dict[str, tuple[Callable, float]]:
    """Name -> (jitted fwd+bwd of ``(params, x, key)``, FLOP ratio dense/variant)."""
    heads, mlp, seq = mode.heads, 4 * mode.width, mode.seq
    dense = DecoderBlock(heads, mlp)
    variants = {"dense": (_grad_fn(lambda p, x, k: dense.apply(p, x, mask)), 1.0)}

    def masked(p, x, k):
        noise = jax.random.uniform(k, x.shape[:2])
        keep = noise >= jnp.quantile(noise, 0.5, axis=1, keepdims=True)
        return MaskedBlock(heads, mlp).apply(p, x, mask, keep_mask=keep)

    variants["masking 50 %"] = (_grad_fn(masked), 1.0)
    for frac in KEEPS:
        r = int(seq * frac)
        block = RandomLTDBlock(DecoderBlock(heads, mlp), keep=r)

        def ltd(p, x, k, block=block):
            return block.apply(p, x, mask, deterministic=False, rngs={"random_ltd": k})

        variants[f"gather/scatter {frac:.0%}"] = (
            _grad_fn(ltd), flops(seq, mode.width) / flops(r, mode.width))
    return variants


def time_blocks(mode: Mode) -> dict[str, tuple[float, float]]:
    """Name -> (median ms of fwd+bwd, FLOP ratio)."""
    x = jax.random.normal(jax.random.key(0), (mode.batch, mode.seq, mode.width))
    mask = causal_mask(jnp.broadcast_to(jnp.arange(mode.seq), (mode.batch, mode.seq)))
    params = DecoderBlock(mode.heads, 4 * mode.width).init(jax.random.key(1), x, mask)
    variants = block_variants(mode, mask)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn, _ in variants.values():  # compile
        jax.block_until_ready(fn(params, x, jax.random.key(2)))
    for rep in range(mode.repeats):
        for name, (fn, _) in variants.items():
            key = jax.random.key(100 + rep)
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, x, key))
            times[name].append(time.perf_counter() - t0)
    return {name: (1e3 * statistics.median(times[name]), variants[name][1])
            for name in variants}


class RunResult(NamedTuple):
    """Part 2: one arm of the scheduled run."""

    ms_per_step: float  # median after the first step of each shape
    compile_s: float
    summary: dict[str, Any]


def make_train_step(model: TransformerLM, tx: optax.GradientTransformation) -> Callable:
    """A jitted Adam step; the kept length ``keep`` is static (a new value compiles)."""

    def loss(params, tokens, key, keep):
        logits = model.clone(random_ltd_keep=keep).apply(
            params, tokens[:, :-1], train=True, rngs={"random_ltd": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    def train_step(params, opt_state, tokens, key, keep):
        grads = jax.grad(loss)(params, tokens, key, keep)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(train_step, static_argnums=4, donate_argnums=(0, 1))


def schedule(mode: Mode) -> tuple[RandomLTDScheduler, ShapeBuckets]:
    """DeepSpeed's fixed_linear kept lengths of the run and their buckets."""
    scheduler = RandomLTDScheduler({
        "total_layer_num": 4, "random_ltd_layer_num": 2, "random_ltd_layer_id": [1, 2],
        "global_batch_size": mode.run_batch,
        "random_ltd_schedule": {"min_value": mode.run_min, "max_value": mode.run_seq,
                                "schedule_type": "fixed_linear",
                                "schedule_config": {"require_steps": mode.run_require,
                                                    "seq_per_step": mode.run_per_step}}},
        min_clamp=True)
    runs = monotone_runs(scheduler.get_value, first_step=0, max_value=mode.run_seq,
                         initial=mode.run_min)
    return scheduler, ShapeBuckets.from_runs(runs)


def run_arm(mode: Mode, ltd: bool) -> RunResult:
    """A run of ``run_steps`` steps: bucketed random-LTD or dense."""
    scheduler, buckets = schedule(mode)
    factory = random_ltd_block_factory([1, 2]) if ltd else None
    kwargs = dict(max_len=mode.run_seq, width=mode.run_width, num_layers=4, num_heads=4,
                  mlp_dim=4 * mode.run_width, block_factory=factory)
    tokens = jax.random.randint(jax.random.key(0), (mode.run_batch, mode.run_seq + 1), 0, 256)
    params = TransformerLM(**kwargs).init(jax.random.key(1), tokens[:, :-1])
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)
    step = make_train_step(TransformerLM(**kwargs), tx)
    counter, times, compile_s = ShapeCounter(), [], 0.0
    for i in range(mode.run_steps):
        keep = buckets(scheduler.update_seq(i)) if ltd else mode.run_seq
        counter.record_step(keep)
        t0 = time.perf_counter()
        params, opt_state = step(params, opt_state, tokens, jax.random.key(i),
                                 None if keep >= mode.run_seq else keep)
        jax.block_until_ready(params)
        elapsed = time.perf_counter() - t0
        if counter.observe_cache_size(keep, step._cache_size()):
            compile_s += elapsed
        else:
            times.append(elapsed)
    return RunResult(1e3 * sum(times) / len(times), compile_s, counter.summary())


def _report_blocks(results: dict[str, tuple[float, float]], mode: Mode) -> tuple[list[str], bool]:
    dense_ms = results["dense"][0]
    rows = [[name, f"{ms:.1f}", f"{dense_ms / ms:.2f}x", f"{ratio:.2f}x",
             f"{dense_ms / ms / ratio:.2f}"] for name, (ms, ratio) in results.items()]
    lines = [f"## 1. Block fwd+bwd, B {mode.batch}, S {mode.seq}, D {mode.width}, "
             f"{mode.heads} heads, MLP {4 * mode.width}, causal", ""]
    lines += _report.table(["variant", "ms", "speedup", "FLOP ratio", "speedup / FLOP ratio"],
                           rows, "lrrrr")
    ms, ratio = results["gather/scatter 50%"]
    achieved = dense_ms / ms / ratio
    ok = achieved >= TARGET
    lines += ["", f"{'PASS' if ok else 'FAIL'}: keep 50 %: speedup {dense_ms / ms:.2f}x is "
              f"{achieved:.2f} of the FLOP ratio {ratio:.2f}x (target >= {TARGET})"]
    return lines, ok


def _report_run(ltd: RunResult, dense: RunResult, mode: Mode) -> list[str]:
    lines = [f"## 2. Train step, 4 layers (ids 1, 2 drop), B {mode.run_batch}, "
             f"S {mode.run_seq}, D {mode.run_width}; kept {mode.run_min} -> {mode.run_seq} "
             f"over {mode.run_require} steps (seq_per_step {mode.run_per_step}), "
             f"{mode.run_steps} steps", ""]
    rows = [[name, f"{r.ms_per_step:.1f}", f"{dense.ms_per_step / r.ms_per_step:.2f}x",
             f"{r.compile_s:.1f}", r.summary["compilations"], r.summary["shapes"]]
            for name, r in (("dense", dense), ("random-LTD, bucketed", ltd))]
    lines += _report.table(["arm", "ms/step", "speedup", "compile s", "compilations",
                            "shapes"], rows, "lrrrrr")
    per_shape = ", ".join(f"{k}: {v['steps']} steps / {v['compilations']} compile"
                          for k, v in ltd.summary["per_shape"].items())
    lines += ["", f"random-LTD per kept length: {per_shape}",
              f"within the bound of {ltd.summary['bound']}: {ltd.summary['within_bound']}"]
    return lines


def run(mode: Mode) -> tuple[list[str], bool]:
    """Runs both parts; returns the report lines and whether the target was met."""
    blocks = time_blocks(mode)
    print("  measured blocks", file=sys.stderr, flush=True)
    lines, ok = _report_blocks(blocks, mode)
    ltd, dense = run_arm(mode, True), run_arm(mode, False)
    lines += ["", *_report_run(ltd, dense, mode)]
    if mode is not FULL:
        lines.append(f"(mode {mode.name}: the target is only reported; the exit status is 0)")
    return lines, ok and ltd.summary["within_bound"]


def describe(mode: Mode) -> str:
    """The ``# mode ...`` line."""
    return (f"# mode {mode.name}: block B {mode.batch} S {mode.seq} D {mode.width}, "
            f"{mode.repeats} repeats; run of {mode.run_steps} steps")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 1 in full mode when the target is missed, else 0."""
    return _report.quick_or_full(
        argv, script="random_ltd.py", description=__doc__.splitlines()[0],
        quick_help="smoke-test sizes (~10 s): a smaller block and run; only reports",
        full=FULL, quick=QUICK, describe=describe, run=run)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
