"""The shared validators: one message format, TypeError for kinds, ValueError for values."""

import math

import numpy as np
import pytest

from algoperf_reinit import _validation as v


class TestMessage:
    def test_format_names_field_rule_value_and_fix(self):
        text = v.message("Decay.rate", 2.0, "in (0, 1]", fix="use a decay")
        assert text == "Decay.rate must be in (0, 1], got 2.0; use a decay"

    def test_type_errors_name_the_type(self):
        err = v.type_error("learning_rate", "0.1", "a real number")
        assert isinstance(err, TypeError)
        assert str(err) == "learning_rate must be a real number, got '0.1' of type str"


class TestReal:
    @pytest.mark.parametrize("value", [1, 1.5, np.float32(2.5), np.int64(3)])
    def test_accepts_real_numbers(self, value):
        assert v.real("x", value) == float(value)
        assert type(v.real("x", value)) is float

    @pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, [1.0], 1j])
    def test_other_kinds_are_type_errors(self, value):
        with pytest.raises(TypeError, match=r"^x must be a real number, got"):
            v.real("x", value)

    def test_nan_is_a_value_error_even_when_infinity_is_allowed(self):
        with pytest.raises(ValueError, match="x must be a number, not NaN, got nan"):
            v.real("x", math.nan, finite=False)

    def test_infinity(self):
        assert v.real("x", math.inf, finite=False) == math.inf
        with pytest.raises(ValueError, match="x must be finite, got inf"):
            v.real("x", math.inf)


class TestRanges:
    @pytest.mark.parametrize(
        ("kwargs", "bad", "rule"),
        [
            ({"low": 0.0, "low_open": True}, 0.0, "> 0"),
            ({"low": 0.0}, -1e-9, ">= 0"),
            ({"high": 1.0, "high_open": True}, 1.0, "< 1"),
            ({"low": 0.0, "high": 1.0, "high_open": True}, 1.0, "in [0, 1)"),
            ({"low": 0.0, "high": 1.0, "low_open": True}, 0.0, "in (0, 1]"),
        ],
    )
    def test_bounds_and_their_wording(self, kwargs, bad, rule):
        with pytest.raises(ValueError) as info:
            v.in_range("f", bad, **kwargs)
        assert str(info.value) == f"f must be {rule}, got {bad!r}"

    def test_shorthands(self):
        assert v.positive("p", 2) == 2.0
        assert v.non_negative("n", 0) == 0.0
        assert v.unit_interval("u", 1) == 1.0
        with pytest.raises(ValueError, match="must be > 0"):
            v.positive("p", 0)
        with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
            v.unit_interval("u", 1, high_open=True)

    def test_fix_is_appended(self):
        with pytest.raises(ValueError, match="got -1; use 0 to disable"):
            v.non_negative("n", -1, fix="use 0 to disable")


class TestInteger:
    def test_ints_and_numpy_ints(self):
        assert v.integer("n", np.int32(4), minimum=1) == 4

    @pytest.mark.parametrize("value", [True, 2.0, "2", None])
    def test_other_kinds_are_type_errors(self, value):
        with pytest.raises(TypeError, match="n must be an int"):
            v.integer("n", value)

    def test_whole_floats_when_asked(self):
        assert v.integer("n", 1000.0, whole_floats=True) == 1000
        with pytest.raises(ValueError, match=r"n must be a whole number, got 2\.5"):
            v.integer("n", 2.5, whole_floats=True)
        with pytest.raises(ValueError, match="whole number"):
            v.integer("n", math.inf, whole_floats=True)

    @pytest.mark.parametrize(
        ("kwargs", "rule"),
        [({"minimum": 1}, "an int >= 1"), ({"maximum": -1}, "an int <= -1"),
         ({"minimum": 1, "maximum": 3}, r"an int in \[1, 3\]")],
    )
    def test_range(self, kwargs, rule):
        with pytest.raises(ValueError, match=f"n must be {rule}, got 0"):
            v.integer("n", 0, **kwargs)


class TestChoiceAndKinds:
    def test_choice_lists_the_valid_names_and_suggests_the_closest(self):
        with pytest.raises(ValueError) as info:
            v.choice("mode", "shrink_perturbb", ("keep", "shrink_perturb"))
        assert str(info.value) == (
            "mode must be one of 'keep', 'shrink_perturb', got 'shrink_perturbb'; "
            "did you mean 'shrink_perturb'?")

    def test_choice_of_a_non_string_is_a_type_error(self):
        with pytest.raises(TypeError, match="mode must be one of 'min', 'max', got 1 of type int"):
            v.choice("mode", 1, ("min", "max"))

    def test_closest_gives_none_when_nothing_is_close(self):
        assert v.closest("zzz", ["alpha", "beta"]) is None
        assert v.closest(3, ["alpha"]) is None

    def test_boolean(self):
        assert v.boolean("b", np.bool_(True)) is True
        with pytest.raises(TypeError, match="b must be a bool"):
            v.boolean("b", 1)

    def test_instance(self):
        assert v.instance("t", 3, int) == 3
        with pytest.raises(TypeError, match=r"t must be an instance of int or str, got 1\.0 of type float"):
            v.instance("t", 1.0, (int, str))

    def test_optional(self):
        assert v.optional(v.positive, "t", None) is None
        assert v.optional(v.positive, "t", 2) == 2.0


class TestWarn:
    def test_called_from_user_code_it_names_that_line(self):
        with pytest.warns(UserWarning, match="^plain$") as caught:
            v.warn("plain")
        assert caught[0].filename == __file__

    def test_called_from_the_library_it_walks_out_to_the_caller(self):
        # Two frames whose module is inside the package (a helper calling warn): the
        # warning names this file, where the library was entered, not the library.
        library = {"__name__": "algoperf_reinit.data_efficiency._config", "warn": v.warn}
        exec("def inner():\n    warn('deep', DeprecationWarning)\n"
             "def outer():\n    inner()\n", library)
        with pytest.warns(DeprecationWarning, match="^deep$") as caught:
            library["outer"]()
        assert caught[0].filename == __file__
