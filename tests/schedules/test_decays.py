"""Decay kinds: one declaration each (named parameters, the table row, rescaling)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoperf_reinit.schedules import (
    DECAY_NAMES,
    CycleSpec,
    Decay,
    DecayId,
    _decays,
    decay_shape,
    table_from_cycles,
)


def test_every_id_has_exactly_one_declaration():
    assert [k.shape_id for k in _decays.KINDS.values()] == list(DecayId)
    assert tuple(_decays.KINDS) == DECAY_NAMES == tuple(m.name.lower() for m in DecayId)
    for kind in _decays.KINDS.values():
        assert len(kind.params) <= _decays.NUM_DECAY_PARAMS


def test_decay_fields_are_the_declared_parameters():
    fields = [f.name for f in dataclasses.fields(Decay) if f.name != "kind"]
    assert sorted(fields) == sorted(_decays.PARAM_NAMES)
    assert len(set(_decays.PARAM_NAMES)) == len(_decays.PARAM_NAMES)  # each has one kind


# The stored layout (checkpoints hold it): one row per kind, as before the refactor.
ROWS = [
    (Decay.constant(), (0.0, 0.0, 0.0)),
    (Decay.cosine(2.0, 0.5), (2.0, 0.5, 0.0)),
    (Decay.linear(), (0.0, 0.0, 0.0)),
    (Decay.polynomial(3.0), (3.0, 0.0, 0.0)),
    (Decay.exponential(0.3), (90.0, 0.3, 0.0)),  # default: the decay phase
    (Decay.exponential(0.3, 37.0, staircase=True), (37.0, 0.3, 1.0)),
    (Decay.rsqrt(), (10.0, 0.0, 0.0)),  # default: the warmup
    (Decay.rsqrt(timescale=7.0), (7.0, 0.0, 0.0)),
    (Decay.wsd(0.25), (0.25, 0.0, 0.0)),
    (Decay.wsd(0.3, "1-sqrt"), (0.3, 1.0, 0.0)),
]


@pytest.mark.parametrize(("shape", "row"), ROWS, ids=repr)
def test_table_rows_keep_their_layout(shape, row):
    assert shape.params(90.0, 10.0) == row
    table = table_from_cycles([CycleSpec(100, warmup=10, decay_shape=shape)], capacity=3)
    assert table.decay_params.shape == (3, 3) and table.decay_params.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(table.decay_params)[0], np.float32(row))
    assert int(table.decay_shape[0]) == shape.shape_id


def test_rsqrt_default_timescale_is_at_least_one_and_transition_at_least_tiny():
    assert Decay.rsqrt().params(90.0, 0.0)[0] == 1.0
    assert Decay.exponential(transition_steps=1e-40).params(90.0, 0.0)[0] == _decays.TINY


def test_rows_are_read_back_by_name_under_jit():
    row = jnp.asarray([Decay.exponential(0.3, 37.0, True).params(90.0, 10.0),
                       Decay.wsd(0.3, "1-sqrt").params(90.0, 10.0)], jnp.float32)
    exponential = jax.jit(lambda r: _decays.unpack(_decays.KINDS["exponential"], r))(row[0])
    assert float(exponential["transition_steps"]) == 37.0
    assert float(exponential["rate"]) == pytest.approx(0.3)
    assert exponential["staircase"].dtype == jnp.bool_ and bool(exponential["staircase"])
    wsd = jax.jit(lambda r: _decays.unpack(_decays.KINDS["wsd"], r))(row[1])
    assert int(wsd["wsd_kind"]) == _decays.WSD_KINDS.index("1-sqrt")


class TestNamedParameters:
    def test_defaults_are_filled_for_the_kind_and_none_elsewhere(self):
        cosine = Decay("cosine")
        assert (cosine.exponent, cosine.k_decay) == (1.0, 1.0)
        assert cosine.rate is None and cosine.power is None and cosine.staircase is None
        exponential = Decay("exponential")
        assert (exponential.rate, exponential.staircase) == (0.5, False)
        assert exponential.transition_steps is None and exponential.exponent is None
        assert Decay("wsd").decay_fraction == 0.2 and Decay("wsd").wsd_kind == "linear"

    def test_existing_spellings_are_equal_and_hash_alike(self):
        pairs = [(Decay.cosine(), Decay("cosine")), (Decay.wsd(), Decay("wsd")),
                 (Decay.cosine(2), Decay.cosine(2.0)), (decay_shape("rsqrt"), Decay.rsqrt()),
                 (Decay.exponential(rate=0.2, transition_steps=5, staircase=True),
                  Decay("exponential", rate=0.2, transition_steps=5.0, staircase=True))]
        for a, b in pairs:
            assert a == b and hash(a) == hash(b)
        assert len({Decay.cosine(), Decay.linear(), Decay("cosine")}) == 2

    @pytest.mark.parametrize(
        ("build", "match"),
        [
            (lambda: Decay("cosine", rate=0.3),
             r"Decay.rate must be None with kind 'cosine' \(only kind 'exponential' takes it\), "
             r"got 0.3; drop it, or choose kind 'exponential'"),
            (lambda: Decay.polynomial(staircase=True),
             r"Decay.staircase must be None with kind 'polynomial' .*'exponential'"),
            (lambda: Decay.linear(power=2.0),
             r"Decay.power must be None with kind 'linear' \(only kind 'polynomial' takes it\)"),
            (lambda: Decay("wsd", timescale=3.0), r"Decay.timescale .*kind 'wsd'.*'rsqrt'"),
            (lambda: Decay.exponential(wsd_kind="linear"), r"Decay.wsd_kind .*'exponential'"),
            (lambda: dataclasses.replace(Decay.cosine(), kind="linear"),
             r"Decay.exponent must be None with kind 'linear'"),
        ],
    )
    def test_a_field_of_another_kind_is_rejected(self, build, match):
        with pytest.raises(ValueError, match=match):
            build()

    def test_a_false_staircase_of_another_kind_is_rejected_too(self):
        # Only None means "not given": an explicit value is a mistake whatever it is.
        with pytest.raises(ValueError, match=r"Decay.staircase must be None with kind 'cosine'"):
            Decay("cosine", staircase=False)

    @pytest.mark.parametrize(
        ("build", "error", "match"),
        [
            (lambda: Decay(3), TypeError, r"Decay.kind must be one of .*got 3 of type int"),
            (lambda: Decay("cosin"), ValueError, r"did you mean 'cosine'\?"),
            (lambda: Decay.exponential(staircase=1), TypeError, "Decay.staircase must be a bool"),
            (lambda: Decay.cosine(exponent="2"), TypeError, "Decay.exponent must be a real number"),
            (lambda: Decay.exponential(transition_steps=-1.0), ValueError,
             "Decay.transition_steps must be > 0, got -1.0"),
        ],
    )
    def test_kinds_and_values(self, build, error, match):
        with pytest.raises(error, match=match):
            build()

    def test_repr_shows_the_kind_and_its_parameters(self):
        assert repr(Decay.wsd(0.3, "1-sqrt")) == "Decay('wsd', decay_fraction=0.3, wsd_kind='1-sqrt')"
        assert repr(Decay.linear()) == "Decay('linear')"


class TestRescale:
    def test_length_parameters_follow_their_measure(self):
        exponential = np.float32(Decay.exponential(transition_steps=54.0).params(270.0, 30.0))
        out = _decays.rescale(DecayId.EXPONENTIAL, exponential, (270.0, 30.0), (293.0, 32.0))
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, [54.0 * 293 / 270, 0.5, 0.0], rtol=1e-6)
        rsqrt = np.float32(Decay.rsqrt().params(270.0, 30.0))
        out = _decays.rescale(DecayId.RSQRT, rsqrt, (270.0, 30.0), (293.0, 0.0))
        np.testing.assert_allclose(out, [1.0, 0.0, 0.0])  # tau = max(warmup, 1)

    @pytest.mark.parametrize("shape", [Decay.cosine(2.0, 0.5), Decay.wsd(0.3, "1-sqrt"),
                                       Decay.polynomial(3.0), Decay.linear()], ids=repr)
    def test_scale_free_parameters_are_kept(self, shape):
        row = np.float32(shape.params(270.0, 30.0))
        out = _decays.rescale(shape.shape_id, row, (270.0, 30.0), (100.0, 5.0))
        assert out.tobytes() == row.tobytes() and out is not row

    def test_unknown_id_keeps_the_row(self):
        row = np.float32([1.0, 2.0, 3.0])
        assert _decays.rescale(99, row, (1.0, 1.0), (2.0, 2.0)).tolist() == [1.0, 2.0, 3.0]
