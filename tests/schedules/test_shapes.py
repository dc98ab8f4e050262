"""Each warmup and decay shape against a float64 numpy transcription of its formula."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.schedules import (
    DECAY_NAMES,
    WARMUP_NAMES,
    CycleSpec,
    Decay,
    Warmup,
    decay_shape,
    table_from_cycles,
    warmup_shape,
)

L, W, INIT, PEAK, END = 200, 40, 1e-4, 2e-3, 1e-4

# The table is an argument, so every test shares one compiled evaluation per shape.
_jit_eval = jax.jit(lambda table, t: table(t))


def _close(actual, expected, peak=PEAK):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-5,
                               atol=1e-6 * peak)


def _ref_warmup(kind, t, power=2.0):
    r = t / W
    if kind == "linear":
        return INIT + (PEAK - INIT) * r
    if kind == "cosine":
        return INIT + (PEAK - INIT) * 0.5 * (1 - np.cos(np.pi * r))
    if kind == "exponential":
        return INIT * (PEAK / INIT) ** r
    if kind == "polynomial":
        return INIT + (PEAK - INIT) * r**power
    if kind == "log":
        return INIT + (PEAK - INIT) * np.log(t + 1) / np.log(W + 1)
    raise AssertionError(kind)


WARMUPS = [Warmup.linear(), Warmup.cosine(), Warmup.exponential(), Warmup.polynomial(3.0),
           Warmup.log()]


@pytest.mark.parametrize("shape", WARMUPS, ids=lambda s: s.kind)
def test_warmup_shape_matches_formula_and_is_continuous(shape):
    table = table_from_cycles([CycleSpec(length=L, warmup=W, peak=PEAK, init_value=INIT,
                                         end_value=END, warmup_shape=shape)])
    t = np.arange(0, W, dtype=np.float64)
    _close(_jit_eval(table, t), _ref_warmup(shape.kind, t, shape.power))
    # Continuity at the warmup end: the last warmup step approaches the peak and the
    # warmup end itself is the peak (owned by the decay).
    near_end = _jit_eval(table, jnp.float32(W - 1e-3))
    assert abs(float(near_end) - PEAK) < 1e-4 * PEAK
    assert float(table(W)) == pytest.approx(PEAK, rel=1e-6)


def test_no_warmup_starts_at_peak_even_if_a_length_is_given():
    table = table_from_cycles([CycleSpec(length=L, warmup=W, peak=PEAK, warmup_shape="none",
                                         decay_shape="linear")])
    assert float(table(0)) == pytest.approx(PEAK)
    assert float(table.warmup[0]) == 0.0


def _ref_decay(shape, t):
    d = t - W
    p = np.clip(d / (L - W), 0, 1)
    if shape.kind == "constant":
        return np.full_like(t, PEAK)
    if shape.kind == "cosine":
        return END + (PEAK - END) * (0.5 * (1 + np.cos(np.pi * p**shape.k_decay))) ** shape.exponent
    if shape.kind == "linear":
        return PEAK + (END - PEAK) * p
    if shape.kind == "polynomial":
        return END + (PEAK - END) * (1 - p) ** shape.power
    if shape.kind == "exponential":
        steps = shape.transition_steps or (L - W)
        e = d / steps
        if shape.staircase:
            e = np.floor(e)
        return np.maximum(PEAK * shape.rate**e, END)
    if shape.kind == "rsqrt":
        tau = shape.timescale or W
        return np.maximum(PEAK * np.sqrt(tau / (tau + d)), END)
    if shape.kind == "wsd":
        start = L - shape.decay_fraction * L
        q = np.clip((t - start) / (L - start), 0, 1)
        if shape.wsd_kind == "linear":
            return PEAK + (END - PEAK) * q
        return END + (PEAK - END) * (1 - np.sqrt(q))
    raise AssertionError(shape.kind)


DECAYS = [
    Decay.constant(), Decay.cosine(), Decay.cosine(exponent=2.0), Decay.cosine(k_decay=0.5),
    Decay.linear(), Decay.polynomial(0.5), Decay.exponential(0.3),
    Decay.exponential(0.5, transition_steps=30, staircase=True), Decay.rsqrt(),
    Decay.rsqrt(timescale=7), Decay.wsd(0.25), Decay.wsd(0.3, "1-sqrt"),
]


@pytest.mark.parametrize("shape", DECAYS, ids=lambda s: repr(s)[:60])
def test_decay_shape_matches_formula(shape):
    table = table_from_cycles([CycleSpec(length=L, warmup=W, peak=PEAK, init_value=INIT,
                                         end_value=END, decay_shape=shape)])
    t = np.arange(W, L + 1, dtype=np.float64)  # includes the cycle end
    _close(_jit_eval(table, t), _ref_decay(shape, t))
    after = float(table(L + 1000))
    assert after == pytest.approx(float(_ref_decay(shape, np.array([L], float))[0]), rel=1e-5)
    if shape.interpolates:
        assert after == pytest.approx(END, rel=1e-5)


def test_every_shape_name_is_covered_by_these_tests():
    assert {s.kind for s in WARMUPS} | {"none"} == set(WARMUP_NAMES)
    assert {s.kind for s in DECAYS} == set(DECAY_NAMES)


class TestShapeErrors:
    def test_unknown_names_list_valid_ones(self):
        with pytest.raises(ValueError, match=r"warmup shape must be one of 'none', 'linear', .*"
                                             r"got 'cosin'; did you mean 'cosine'\?"):
            warmup_shape("cosin")
        with pytest.raises(ValueError, match=r"decay shape must be one of 'constant', 'cosine', "
                                             r".*got 'step'"):
            decay_shape("step")

    def test_wrong_type(self):
        with pytest.raises(TypeError, match="must be a shape name"):
            decay_shape(3)

    @pytest.mark.parametrize(
        ("build", "match"),
        [
            (lambda: Decay.exponential(rate=1.5), r"Decay.rate must be in \(0, 1\]"),
            (lambda: Decay.exponential(rate=0.0), r"Decay.rate must be in \(0, 1\]"),
            (lambda: Decay.cosine(exponent=-1.0), "Decay.exponent must be > 0"),
            (lambda: Decay.wsd(decay_fraction=0.0), r"decay_fraction must be in \(0, 1\]"),
            (lambda: Decay.wsd(wsd_kind="sqrt"),
             r"Decay.wsd_kind must be one of 'linear', '1-sqrt', got 'sqrt'"),
            (lambda: Warmup.polynomial(math.nan), "Warmup.power must be a number, not NaN"),
            (lambda: Decay.rsqrt(timescale=0), "timescale must be > 0"),
        ],
    )
    def test_bad_parameters(self, build, match):
        with pytest.raises(ValueError, match=match):
            build()

    def test_exponential_warmup_from_zero_is_an_error(self):
        with pytest.raises(ValueError, match="exponential warmup is geometric and needs init_value > 0"):
            table_from_cycles([CycleSpec(length=10, warmup=5, peak=1.0, init_value=0.0,
                                         warmup_shape="exponential")])
