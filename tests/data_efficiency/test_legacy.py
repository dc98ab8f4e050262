"""The legacy top-level curriculum_learning block (DeepSpeed <= 0.19.6, spec §1.2, §2.3, §5)."""

import copy
import re
import warnings

import pytest

from algoperf_reinit.data_efficiency import (
    LEGACY_METRIC_NAME,
    CurriculumScheduler,
    parse_data_efficiency_config,
)
from tests.data_efficiency.test_difficulty import spec_fixed_root

METRICS = "data_efficiency.data_sampling.curriculum_learning.curriculum_metrics"


def legacy(**changes):
    block = {"enabled": True, "curriculum_type": "seqlen", "min_difficulty": 8,
             "max_difficulty": 64, "schedule_type": "fixed_linear",
             "schedule_config": {"total_curriculum_step": 6, "difficulty_step": 8}}
    block.update(changes)
    return {"train_batch_size": 4, "curriculum_learning": block}


def parse_quietly(config, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_data_efficiency_config(config, **kwargs)


def raises(exc, text):
    return pytest.raises(exc, match="^" + re.escape(text))


class TestMapping:
    def test_deprecation_warning_says_what_it_became(self):
        with pytest.warns(DeprecationWarning, match=re.escape(
                "curriculum_learning (the legacy top-level curriculum block of DeepSpeed <= "
                "0.19.6, removed in 0.19.8) became the curriculum metric "
                f"{METRICS}.seqlen_truncate: clustering_type 'single_cluster', difficulty_type "
                "'value', the same schedule, legacy_rounding=True")) as caught:
            parse_data_efficiency_config(legacy())
        assert caught[0].filename == __file__

    def test_becomes_a_single_cluster_seqlen_truncate_metric(self):
        cfg = parse_quietly(legacy())
        cl = cfg.curriculum_learning
        assert cl.enabled and list(cl.curriculum_metrics) == [LEGACY_METRIC_NAME] == ["seqlen_truncate"]
        assert cl.data_cluster_path is None  # nothing is clustered
        m = cl.curriculum_metrics["seqlen_truncate"]
        assert (m.clustering_type, m.difficulty_type, m.legacy_rounding) == (
            "single_cluster", "value", True)
        assert (m.min_difficulty, m.max_difficulty, m.schedule_type) == (8, 64, "fixed_linear")
        assert (m.schedule_config.total_curriculum_step, m.schedule_config.difficulty_step) == (6, 8)

    def test_recorded_engine_sequence(self):
        # Spec §5 (recorded, 0.19.5): legacy CL 8 -> 64 / T 6 / q 8 gives curriculum_seqlen
        # 16, 24, 32, 40, 48, 64 at global steps 0..5, i.e. update_difficulty(g + 1).
        metric = parse_quietly(legacy()).curriculum_learning.curriculum_metrics["seqlen_truncate"]
        s = CurriculumScheduler(metric)
        assert [s.update_difficulty(g + 1) for g in range(6)] == [16, 24, 32, 40, 48, 64]

    def test_legacy_rounding_has_no_lower_clamp(self):
        cfg = parse_quietly(legacy(min_difficulty=8, schedule_config={
            "total_curriculum_step": 100, "difficulty_step": 16}))
        s = CurriculumScheduler(cfg.curriculum_learning.curriculum_metrics["seqlen_truncate"])
        assert s.get_difficulty(1) == spec_fixed_root(1, 8, 64, 100, 16, 1, clamp=False) == 0

    def test_explicit_false_overrides(self):
        cfg = parse_quietly(legacy(), legacy_rounding=False)
        assert cfg.curriculum_learning.curriculum_metrics["seqlen_truncate"].legacy_rounding is False

    def test_round_trip(self):
        cfg = parse_quietly(legacy(schedule_config={"total_curriculum_step": 6,
                                                    "difficulty_step": 8, "note": 1}))
        assert parse_quietly(cfg.to_dict()) == cfg
        metric = cfg.to_dict()["data_sampling"]["curriculum_learning"]["curriculum_metrics"][
            "seqlen_truncate"]
        assert metric["legacy_rounding"] is True

    def test_input_is_not_mutated(self):
        config = legacy()
        before = copy.deepcopy(config)
        parse_quietly(config)
        assert config == before


class TestWithDataEfficiency:
    def data_efficiency(self, name="seqlen"):
        return {"data_sampling": {"curriculum_learning": {
            "enabled": True, "data_cluster_path": "/clusters",
            "curriculum_metrics": {name: {
                "index_to_sample_path": "/i", "index_to_metric_path": "/m",
                "difficulty_type": "value", "clustering_type": "schedule_based",
                "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
                "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 16}}}}}}

    def test_added_beside_the_data_efficiency_metrics_all_with_legacy_rounding(self):
        # The legacy block only existed in <= 0.19.6, whose schedules all lacked the clamp.
        cfg = parse_quietly({**legacy(), "data_efficiency": self.data_efficiency()})
        metrics = cfg.curriculum_learning.curriculum_metrics
        assert list(metrics) == ["seqlen", "seqlen_truncate"]
        assert all(m.legacy_rounding for m in metrics.values())
        assert cfg.curriculum_learning.data_cluster_path == "/clusters"
        assert CurriculumScheduler(metrics["seqlen"]).get_difficulty(0) == 0

    def test_without_the_legacy_block_the_clamp_is_on(self):
        cfg = parse_quietly({"train_batch_size": 4, "data_efficiency": self.data_efficiency()})
        assert CurriculumScheduler(cfg.curriculum_learning.curriculum_metrics["seqlen"]).get_difficulty(0) == 16

    def test_name_conflict(self):
        with raises(ValueError, f"{METRICS}.seqlen_truncate must be a name not taken: the legacy "
                                "block curriculum_learning becomes this metric, got 'seqlen_truncate'"):
            parse_quietly({**legacy(), "data_efficiency": self.data_efficiency("seqlen_truncate")})


class TestRules:
    def test_disabled_block_is_ignored_with_a_warning(self):
        with pytest.warns(DeprecationWarning, match=re.escape(
                "curriculum_learning (the legacy top-level curriculum block, removed in "
                "DeepSpeed 0.19.8) is disabled and ignored; delete it")):
            cfg = parse_data_efficiency_config(legacy(enabled=False))
        assert not cfg.curriculum_learning.enabled

    def test_enabled_is_required(self):
        # DeepSpeed <= 0.19.6 pops 'enabled': KeyError('enabled') (recorded).
        config = legacy()
        del config["curriculum_learning"]["enabled"]
        with raises(ValueError, "curriculum_learning.enabled must be given in the legacy top-level "
                                "curriculum_learning block (DeepSpeed <= 0.19.6 fails with "
                                "KeyError('enabled')), got <missing>"):
            parse_quietly(config)

    def test_only_seqlen_had_an_effect(self):
        with raises(ValueError, "curriculum_learning.curriculum_type must be one of 'seqlen', got "
                                "'vocab'"):
            parse_quietly(legacy(curriculum_type="vocab"))

    def test_curriculum_type_is_required(self):
        config = legacy()
        del config["curriculum_learning"]["curriculum_type"]
        with raises(ValueError, "curriculum_learning.curriculum_type must be given in the legacy"):
            parse_quietly(config)

    @pytest.mark.parametrize(("changes", "exc", "text"), [
        ({"schedule_type": "fixed_lin"}, ValueError,
         "curriculum_learning.schedule_type must be one of 'fixed_linear'"),
        ({"schedule_config": {"total_curriculum_step": 6}}, ValueError,
         "curriculum_learning.schedule_config.difficulty_step must be given for schedule_type "
         "'fixed_linear', got <missing>"),
        ({"min_difficulty": "8"}, TypeError,
         "curriculum_learning.min_difficulty must be an int, got '8' of type str"),
        ({"enabled": "yes"}, TypeError, "curriculum_learning.enabled must be a bool"),
    ])
    def test_schedule_errors_name_the_legacy_path(self, changes, exc, text):
        with raises(exc, text):
            parse_quietly(legacy(**changes))

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    def test_unknown_key_of_the_legacy_block(self):
        with pytest.warns(UserWarning, match=re.escape(
                "curriculum_learning.max_dificulty is not a known key (did you mean "
                "'max_difficulty'?)")):
            parse_data_efficiency_config(legacy(max_dificulty=3))

    def test_not_a_dict(self):
        with raises(TypeError, "curriculum_learning must be a dict (a JSON object), got False"):
            parse_quietly({"curriculum_learning": False})
