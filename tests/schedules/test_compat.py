"""PyTorch's and timm's warm-restart schedules, from transcriptions of their formulas."""

import math

import jax
import numpy as np
import pytest

from algoperf_reinit.schedules import pytorch_cosine_warm_restarts, timm_cosine

_eval = jax.jit(lambda table, t: table(t))


def torch_sgdr(step, base_lr, t_0, t_mult, eta_min):
    """CosineAnnealingWarmRestarts' closed form (PyTorch docs) after `step` scheduler steps."""
    if t_mult == 1:
        t_cur, t_i = step % t_0, t_0
    else:
        n = int(math.log(step / t_0 * (t_mult - 1) + 1, t_mult))
        t_cur = step - t_0 * (t_mult**n - 1) / (t_mult - 1)
        t_i = t_0 * t_mult**n
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def timm_lr(t, base_lr, t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_t,
            warmup_lr_init, warmup_prefix, k_decay):
    """timm CosineLRScheduler._get_lr for one param group (its published formula)."""
    if t < warmup_t:
        return warmup_lr_init + t * (base_lr - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**i * t_initial
        t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * i
    lr_max = base_lr * cycle_decay**i
    if i < cycle_limit:
        return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr**k_decay
                                                                / t_i**k_decay))
    return lr_min


@pytest.mark.parametrize(("t_0", "t_mult", "eta_min"), [(100, 1, 0.0), (50, 2, 1e-5), (30, 3, 0.0)])
def test_pytorch_cosine_annealing_warm_restarts(t_0, t_mult, eta_min):
    budget = 1000
    table = pytorch_cosine_warm_restarts(1e-3, t_0, budget, T_mult=t_mult, eta_min=eta_min)
    steps = np.arange(budget)
    expected = [torch_sgdr(s, 1e-3, t_0, t_mult, eta_min) for s in steps]
    np.testing.assert_allclose(_eval(table, steps), expected, rtol=1e-5, atol=1e-9)


TIMM_CASES = [
    dict(t_initial=200, lr_min=1e-5, cycle_mul=1.0, cycle_decay=1.0, cycle_limit=1, warmup_t=0,
         warmup_lr_init=0.0, warmup_prefix=False, k_decay=1.0),
    dict(t_initial=100, lr_min=1e-5, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=3, warmup_t=20,
         warmup_lr_init=1e-6, warmup_prefix=True, k_decay=1.0),
    dict(t_initial=100, lr_min=0.0, cycle_mul=1.0, cycle_decay=0.8, cycle_limit=4, warmup_t=25,
         warmup_lr_init=1e-5, warmup_prefix=False, k_decay=1.0),
    dict(t_initial=120, lr_min=1e-5, cycle_mul=1.5, cycle_decay=0.9, cycle_limit=3, warmup_t=10,
         warmup_lr_init=0.0, warmup_prefix=True, k_decay=2.0),
    dict(t_initial=80, lr_min=2e-5, cycle_mul=1.0, cycle_decay=1.0, cycle_limit=2, warmup_t=0,
         warmup_lr_init=0.0, warmup_prefix=False, k_decay=0.5),
]


@pytest.mark.parametrize("case", TIMM_CASES, ids=range(len(TIMM_CASES)))
def test_timm_cosine_lr_scheduler(case):
    table = timm_cosine(2e-3, **case)
    steps = np.arange(1200)
    expected = [timm_lr(int(s), 2e-3, **case) for s in steps]
    np.testing.assert_allclose(_eval(table, steps), expected, rtol=1e-5, atol=2e-9)


def test_timm_without_prefix_needs_the_warmup_inside_the_first_cycle():
    with pytest.raises(ValueError, match=r"warmup_t \(100\) must be < t_initial \(100.0\)"):
        timm_cosine(1e-3, 100, warmup_t=100)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(base_lr=1e-3, T_0=0, budget=10), ValueError, r"T_0 must be an int >= 1, got 0"),
        (dict(base_lr=1e-3, T_0=10, budget=10, T_mult=1.5), TypeError,
         r"T_mult must be an int, got 1.5 of type float"),
        (dict(base_lr=-1.0, T_0=10, budget=10), ValueError, r"base_lr must be > 0, got -1.0"),
        (dict(base_lr=1e-3, T_0=10, budget=0), ValueError, r"budget must be > 0, got 0"),
    ],
)
def test_pytorch_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        pytorch_cosine_warm_restarts(**kwargs)
