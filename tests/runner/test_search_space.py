"""Search-space points: AlgoPerf's list form and min/max/scaling dict form (Halton)."""

import json
import math

import pytest

from algoperf_reinit.runner import load_search_space, search_space_points

SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
    "beta1": {"min": 0.8, "max": 0.95, "scaling": "linear"},
    "warmup_factor": {"feasible_points": [0.02, 0.05]},
}


def test_list_form_is_used_in_order_and_truncated():
    points = search_space_points([{"lr": 1.0, "wd": 2}, {"lr": 3.0, "wd": 4}], 1)
    assert len(points) == 1 and points[0].lr == 1.0 and points[0]._fields == ("lr", "wd")


def test_dict_form_points_lie_in_their_ranges_and_differ():
    points = search_space_points(SPACE, 8)
    assert len(points) == 8
    assert len({p.learning_rate for p in points}) == 8
    for p in points:
        assert 1e-4 <= p.learning_rate <= 1e-2 and 0.8 <= p.beta1 <= 0.95
        assert p.warmup_factor in (0.02, 0.05)
        assert p._fields == tuple(SPACE)


def test_dict_form_is_quasi_random_halton_in_sorted_name_order():
    from scipy.stats import qmc

    (point,) = search_space_points(SPACE, 1)
    # Sorted names: beta1, learning_rate, warmup_factor; the origin is skipped.
    u = qmc.Halton(d=3, scramble=False).random(2)[1]
    assert point.beta1 == pytest.approx(0.8 + u[0] * 0.15)
    assert math.log(point.learning_rate) == pytest.approx(
        math.log(1e-4) + u[1] * (math.log(1e-2) - math.log(1e-4)))
    assert point.warmup_factor == [0.02, 0.05][int(u[2] * 2)]
    reordered = dict(reversed(list(SPACE.items())))
    assert search_space_points(reordered, 1)[0].learning_rate == point.learning_rate


@pytest.mark.parametrize(("space", "message"), [
    ([], "list of points is empty"),
    ({}, "search space is empty"),
    ({"lr": {"min": 1, "max": 2}}, "missing \\['scaling'\\]"),
    ({"lr": {"min": 0, "max": 2, "scaling": "log"}}, r"min \(log scaling\) must be > 0, got 0"),
    ({"lr": {"min": 3, "max": 2, "scaling": "linear"}}, "min must be <= max"),
    ({"lr": {"min": 1, "max": 2, "scaling": "cubic"}}, "scaling must be one of 'linear', 'log', got 'cubic'"),
    ({"lr": {"feasible_points": []}}, "non-empty list"),
    ({"lr": 0.1}, "must be an object"),
    ([{"1lr": 0.1}], "Python identifiers"),
    ("x", "got a JSON str"),
])
def test_malformed_spaces_name_the_problem(space, message):
    with pytest.raises(ValueError, match=message):
        search_space_points(space, 2)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "space.json"
    bad.write_text('{"lr": {"min": 1,}')
    with pytest.raises(ValueError, match=r"space\.json: invalid JSON at line 1"):
        load_search_space(bad, 1)
    bad.write_text('{"lr": {"feasible_points": [NaN]}}')
    with pytest.raises(ValueError, match="non-finite number NaN"):
        load_search_space(bad, 1)
    with pytest.raises(ValueError, match="not found"):
        load_search_space(tmp_path / "missing.json", 1)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SPACE))
    assert len(load_search_space(good, 3)) == 3


def test_num_trials_must_be_positive():
    with pytest.raises(ValueError, match="num_tuning_trials must be an int >= 1"):
        search_space_points(SPACE, 0)


@pytest.mark.parametrize(("spec", "message"), [
    ({"min": "0.1", "max": 2, "scaling": "log"}, "'lr': min must be a real number, got '0.1' of type str"),
    ({"min": 0.1, "max": None, "scaling": "log"}, "'lr': max must be a real number, got None"),
    ({"min": True, "max": 2, "scaling": "linear"}, "'lr': min must be a real number, got True"),
    ({"min": 0.1, "max": 2, "scaling": 1}, "'lr': scaling must be one of 'linear', 'log', got 1 of type int"),
])
def test_values_of_the_wrong_kind_are_type_errors(spec, message):
    with pytest.raises(TypeError, match=__import__("re").escape(message)):
        search_space_points({"lr": spec}, 1)
    with pytest.raises(TypeError, match="num_tuning_trials must be an int, got True"):
        search_space_points(SPACE, True)


def test_an_infinite_bound_is_a_value_error():
    with pytest.raises(ValueError, match="'lr': max must be finite, got inf"):
        search_space_points({"lr": {"min": 1, "max": float("inf"), "scaling": "linear"}}, 1)
