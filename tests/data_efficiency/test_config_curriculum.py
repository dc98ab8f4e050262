"""The curriculum_learning block: every invalid configuration, by key path (spec §1.1, §2)."""

import copy
import re
import warnings

import pytest

from algoperf_reinit.data_efficiency import (
    CurriculumLearningConfig,
    CurriculumMetricConfig,
    CurriculumScheduleConfig,
    parse_data_efficiency_config,
)

CL = "data_efficiency.data_sampling.curriculum_learning"
M = f"{CL}.curriculum_metrics.seqlen"


def config(metric=None, **cl):
    """A whole data_efficiency block with one enabled metric named seqlen."""
    metric = {"index_to_sample_path": "/idx/seqlen_index_to_sample",
              "index_to_metric_path": "/idx/seqlen_index_to_metric",
              "difficulty_type": "value", "clustering_type": "schedule_based",
              "min_difficulty": 16, "max_difficulty": 64, "schedule_type": "fixed_linear",
              "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8},
              **(metric or {})}
    block = {"enabled": True, "data_cluster_path": "/clusters",
             "curriculum_metrics": {"seqlen": metric}, **cl}
    return {"data_sampling": {"curriculum_learning": block}}


def without(cfg, *path):
    cfg = copy.deepcopy(cfg)
    node = cfg["data_sampling"]["curriculum_learning"]
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return cfg


def metric_path(*keys):
    return ("curriculum_metrics", "seqlen", *keys)


def raises(exc, text):
    """pytest.raises matching ``text`` literally from its start."""
    return pytest.raises(exc, match="^" + re.escape(text))


class TestRequired:
    def test_metrics_when_enabled(self):
        # DeepSpeed: AssertionError("Curriculum learning is enabled, curriculum_metrics
        # must be specified") at config parse.
        with raises(ValueError, f"{CL}.curriculum_metrics must be given when "
                                "curriculum_learning is enabled, got <missing>"):
            parse_data_efficiency_config(without(config(), "curriculum_metrics"))

    def test_at_least_one_metric(self):
        with raises(ValueError, f"{CL}.curriculum_metrics must be a non-empty dict of metrics, got {{}}"):
            parse_data_efficiency_config(config(curriculum_metrics={}))

    @pytest.mark.parametrize("key", ["min_difficulty", "max_difficulty", "schedule_type"])
    def test_schedule_keys(self, key):
        # DeepSpeed: AssertionError("Curriculum learning requires the config '<key>'").
        with raises(ValueError, f"{M}.{key} must be given for every curriculum metric, got <missing>"):
            parse_data_efficiency_config(without(config(), *metric_path(key)))

    @pytest.mark.parametrize("key", ["difficulty_type", "clustering_type"])
    def test_sampler_keys(self, key):
        # DeepSpeed: KeyError when the sampler is built; ours at parse.
        with raises(ValueError, f"{M}.{key} must be given when curriculum_learning is enabled"):
            parse_data_efficiency_config(without(config(), *metric_path(key)))

    def test_schedule_config(self):
        # DeepSpeed: KeyError('schedule_config') for a non-custom schedule.
        with raises(ValueError, f"{M}.schedule_config must be given for schedule_type "
                                "'fixed_linear', got <missing>"):
            parse_data_efficiency_config(without(config(), *metric_path("schedule_config")))

    @pytest.mark.parametrize(("schedule_type", "key"), [
        ("fixed_linear", "total_curriculum_step"), ("fixed_linear", "difficulty_step"),
        ("fixed_root", "total_curriculum_step"), ("fixed_root", "difficulty_step"),
        ("fixed_root", "root_degree"), ("fixed_discrete", "difficulty"),
        ("fixed_discrete", "max_step")])
    def test_schedule_config_keys(self, schedule_type, key):
        sched = {"total_curriculum_step": 10, "difficulty_step": 8, "root_degree": 2,
                 "difficulty": [16, 32, 64], "max_step": [3, 6]}
        del sched[key]
        with raises(ValueError, f"{M}.schedule_config.{key} must be given for schedule_type "
                                f"{schedule_type!r}, got <missing>"):
            parse_data_efficiency_config(config({"schedule_type": schedule_type,
                                                 "schedule_config": sched}))

    def test_data_cluster_path_for_schedule_based_metrics(self):
        with raises(ValueError, f"{CL}.data_cluster_path must be given when a curriculum metric "
                                "is schedule_based, got <missing>"):
            parse_data_efficiency_config(without(config(), "data_cluster_path"))

    def test_no_data_cluster_path_needed_when_every_metric_is_single_cluster(self):
        cfg = parse_data_efficiency_config(without(config({"clustering_type": "single_cluster"}),
                                                   "data_cluster_path"))
        assert cfg.curriculum_learning.data_cluster_path is None

    @pytest.mark.parametrize(("difficulty_type", "key"), [
        ("value", "index_to_sample_path"), ("value", "index_to_metric_path"),
        ("percentile", "index_to_sample_path")])
    def test_index_paths_of_schedule_based_metrics(self, difficulty_type, key):
        cfg = without(config({"difficulty_type": difficulty_type, "min_difficulty": 1,
                              "max_difficulty": 100}), *metric_path(key))
        with raises(ValueError, f"{M}.{key} must be given for a schedule_based "
                                f"{difficulty_type!r} metric, got <missing>"):
            parse_quietly(cfg)

    def test_percentile_needs_no_index_to_metric(self):
        cfg = without(config({"difficulty_type": "percentile", "min_difficulty": 0,
                              "max_difficulty": 100}), *metric_path("index_to_metric_path"))
        assert parse_quietly(cfg).curriculum_learning.curriculum_metrics["seqlen"].index_to_metric_path is None

    def test_single_cluster_ignores_index_paths(self):
        cfg = config({"clustering_type": "single_cluster"})
        cfg = without(without(cfg, *metric_path("index_to_sample_path")),
                      *metric_path("index_to_metric_path"))
        parse_data_efficiency_config(cfg)


def parse_quietly(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_data_efficiency_config(cfg)


class TestChoices:
    def test_unknown_schedule_type(self):
        # DeepSpeed: RuntimeError("Unsupported curriculum schedule type").
        with raises(ValueError, f"{M}.schedule_type must be one of 'fixed_linear', 'fixed_root', "
                                "'fixed_discrete', 'custom', got 'fixed_cubic'"):
            parse_data_efficiency_config(config({"schedule_type": "fixed_cubic"}))

    def test_difficulty_type(self):
        with raises(ValueError, f"{M}.difficulty_type must be one of 'value', 'percentile', got "
                                "'percent'; did you mean 'percentile'?"):
            parse_data_efficiency_config(config({"difficulty_type": "percent"}))

    def test_clustering_type_typo_is_not_schedule_based(self):
        # DeepSpeed treats any string but 'single_cluster' as schedule-based.
        with raises(ValueError, f"{M}.clustering_type must be one of 'single_cluster', "
                                "'schedule_based', got 'single_clustr'; did you mean 'single_cluster'?"):
            parse_data_efficiency_config(config({"clustering_type": "single_clustr"}))


class TestValues:
    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("total_curriculum_step", 0, ValueError, "must be an int >= 1, got 0"),
        ("total_curriculum_step", -5, ValueError, "must be an int >= 1, got -5"),
        ("total_curriculum_step", 10.0, TypeError, "must be an int, got 10.0 of type float"),
        ("total_curriculum_step", "10", TypeError, "must be an int, got '10' of type str"),
        ("difficulty_step", 0, ValueError, "must be an int >= 1, got 0"),
        ("difficulty_step", True, TypeError, "must be an int, got True of type bool"),
        ("difficulty_step", None, ValueError, "must be given for schedule_type 'fixed_linear'"),
    ])
    def test_schedule_config_numbers(self, key, value, exc, text):
        sched = {"total_curriculum_step": 10, "difficulty_step": 8, key: value}
        with raises(exc, f"{M}.schedule_config.{key} {text}"):
            parse_data_efficiency_config(config({"schedule_config": sched}))

    @pytest.mark.parametrize(("value", "exc", "text"), [
        (0, ValueError, "must be > 0, got 0"), (-2, ValueError, "must be > 0, got -2"),
        (float("nan"), ValueError, "must be a number, not NaN, got nan"),
        (float("inf"), ValueError, "must be finite, got inf"),
        ("2", TypeError, "must be a real number, got '2' of type str")])
    def test_root_degree(self, value, exc, text):
        sched = {"total_curriculum_step": 10, "difficulty_step": 8, "root_degree": value}
        with raises(exc, f"{M}.schedule_config.root_degree {text}"):
            parse_data_efficiency_config(config({"schedule_type": "fixed_root",
                                                 "schedule_config": sched}))

    def test_float_root_degree(self):
        sched = {"total_curriculum_step": 10, "difficulty_step": 8, "root_degree": 2.5}
        cfg = parse_data_efficiency_config(config({"schedule_type": "fixed_root",
                                                   "schedule_config": sched}))
        assert cfg.curriculum_learning.curriculum_metrics["seqlen"].schedule_config.root_degree == 2.5

    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("min_difficulty", 16.5, TypeError, "must be an int, got 16.5 of type float"),
        ("max_difficulty", float("nan"), TypeError, "must be an int, got nan of type float"),
        ("max_difficulty", None, TypeError, "must be an int, got None of type NoneType"),
        ("min_difficulty", 65, ValueError, "must be <= max_difficulty = 64, got 65"),
    ])
    def test_difficulties(self, key, value, exc, text):
        with raises(exc, f"{M}.{key} {text}"):
            parse_data_efficiency_config(config({key: value}))

    def test_value_difficulties_may_be_negative(self):
        cfg = parse_data_efficiency_config(config({"min_difficulty": -40, "max_difficulty": -8}))
        assert cfg.curriculum_learning.curriculum_metrics["seqlen"].min_difficulty == -40

    @pytest.mark.parametrize(("changes", "text"), [
        ({"min_difficulty": -1}, "min_difficulty must be an int >= 0, got -1"),
        ({"min_difficulty": 0, "max_difficulty": 0},
         "max_difficulty must be an int >= 1, got 0; percentiles are 0..max_difficulty"),
    ])
    def test_percentile_bounds(self, changes, text):
        with raises(ValueError, f"{M}.{text}"):
            parse_data_efficiency_config(config({"difficulty_type": "percentile", **changes}))

    def test_min_equal_max_is_valid(self):
        parse_data_efficiency_config(config({"min_difficulty": 64}))


class TestFixedDiscrete:
    def discrete(self, difficulty, max_step, **metric):
        return config({"schedule_type": "fixed_discrete",
                       "schedule_config": {"difficulty": difficulty, "max_step": max_step},
                       **metric})

    def test_valid(self):
        cfg = parse_data_efficiency_config(self.discrete([16, 32, 64], [5, 10]))
        sched = cfg.curriculum_learning.curriculum_metrics["seqlen"].schedule_config
        assert (sched.difficulty, sched.max_step) == ((16, 32, 64), (5, 10))

    @pytest.mark.parametrize(("difficulty", "max_step", "exc", "text"), [
        ([16, 32], [5, 10], ValueError,
         "schedule_config.difficulty must be a list of len(max_step) + 1 = 3 levels, got [16, 32]"),
        ([], [5], ValueError, "schedule_config.difficulty must be a non-empty list, got []"),
        ([16], [], ValueError, "schedule_config.max_step must be a non-empty list, got []"),
        ([16, 32, 64], [10, 5], ValueError,
         "schedule_config.max_step must be strictly increasing, got [10, 5]"),
        ([16, 32, 64], [5, 5], ValueError, "schedule_config.max_step must be strictly increasing"),
        ([16, 32, 64], [-1, 5], ValueError, "schedule_config.max_step[0] must be an int >= 0, got -1"),
        ([16, "32", 64], [1, 5], TypeError, "schedule_config.difficulty[1] must be an int, got '32'"),
        ("16,32", [5], TypeError, "schedule_config.difficulty must be a list of ints, got '16,32'"),
    ])
    def test_invalid(self, difficulty, max_step, exc, text):
        # DeepSpeed: AssertionError (empty message for the length checks); max_step
        # ordering is not checked by DeepSpeed.
        with raises(exc, f"{M}.{text}"):
            parse_data_efficiency_config(self.discrete(difficulty, max_step))

    def test_percentile_levels_within_max(self):
        with raises(ValueError, f"{M}.schedule_config.difficulty[2] must be an int in [0, 100], got 101"):
            parse_data_efficiency_config(self.discrete(
                [10, 50, 101], [5, 10], difficulty_type="percentile", min_difficulty=10,
                max_difficulty=100))


class TestWarnings:
    def test_difficulty_step_not_a_multiple_of_8_is_only_a_warning(self):
        with pytest.warns(UserWarning, match=re.escape(
                f"{M}.schedule_config.difficulty_step is 12, not a multiple of 8")):
            cfg = parse_data_efficiency_config(config({"schedule_config": {
                "total_curriculum_step": 10, "difficulty_step": 12}}))
        assert cfg.curriculum_learning.curriculum_metrics["seqlen"].schedule_config.difficulty_step == 12

    def test_multiples_of_8_do_not_warn(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parse_data_efficiency_config(config())


class TestTypes:
    def test_metric_not_a_dict(self):
        with raises(TypeError, f"{M} must be a dict (a JSON object), got 3 of type int"):
            parse_data_efficiency_config(config(curriculum_metrics={"seqlen": 3}))

    def test_schedule_config_not_a_dict(self):
        with raises(TypeError, f"{M}.schedule_config must be a dict (a JSON object), got [10, 8]"):
            parse_data_efficiency_config(config({"schedule_config": [10, 8]}))

    def test_paths(self):
        with raises(TypeError, f"{M}.index_to_sample_path must be a path (a string), got 3"):
            parse_data_efficiency_config(config({"index_to_sample_path": 3}))
        with raises(ValueError, f"{CL}.data_cluster_path must be a non-empty path, got ''"):
            parse_data_efficiency_config(config(data_cluster_path=""))

    def test_pathlike_paths_become_strings(self, tmp_path):
        cfg = parse_data_efficiency_config(config({"index_to_sample_path": tmp_path / "i"},
                                                  data_cluster_path=tmp_path))
        cl = cfg.curriculum_learning
        assert cl.data_cluster_path == str(tmp_path)
        assert cl.curriculum_metrics["seqlen"].index_to_sample_path == str(tmp_path / "i")

    def test_legacy_rounding_key(self):
        with raises(TypeError, f"{M}.legacy_rounding must be a bool"):
            parse_data_efficiency_config(config({"legacy_rounding": "yes"}))


class TestObjects:
    def test_metric_order_is_config_order(self):
        cfg = config()
        metrics = cfg["data_sampling"]["curriculum_learning"]["curriculum_metrics"]
        metrics["vocab"] = dict(metrics["seqlen"])
        metrics["a"] = dict(metrics["seqlen"])
        parsed = parse_data_efficiency_config(cfg).curriculum_learning.curriculum_metrics
        assert list(parsed) == ["seqlen", "vocab", "a"]

    def test_direct_construction_is_validated_too(self):
        with raises(ValueError, "data_efficiency.data_sampling.curriculum_learning."
                                "curriculum_metrics.<metric>.schedule_config must be given"):
            CurriculumMetricConfig(min_difficulty=1, max_difficulty=2, schedule_type="fixed_root")

    def test_objects_compose(self):
        metric = CurriculumMetricConfig(
            min_difficulty=16, max_difficulty=64, schedule_type="fixed_linear",
            schedule_config=CurriculumScheduleConfig(total_curriculum_step=10, difficulty_step=8),
            difficulty_type="value", clustering_type="single_cluster")
        cl = CurriculumLearningConfig(enabled=True, curriculum_metrics={"seqlen_truncate": metric})
        assert cl.curriculum_metrics["seqlen_truncate"] is metric
        assert cl.to_dict()["curriculum_metrics"]["seqlen_truncate"]["min_difficulty"] == 16

    def test_custom_schedule_config_is_optional_and_round_trips(self):
        cfg = parse_data_efficiency_config(config({"schedule_type": "custom"}))
        assert parse_data_efficiency_config(cfg.to_dict()) == cfg
        cfg = without(config({"schedule_type": "custom"}), *metric_path("schedule_config"))
        parsed = parse_data_efficiency_config(cfg)
        assert "schedule_config" not in parsed.to_dict()["data_sampling"]["curriculum_learning"][
            "curriculum_metrics"]["seqlen"]
        assert parse_data_efficiency_config(parsed.to_dict()) == parsed
