"""DeepSpeedDataSampler checkpoints: DeepSpeed's keys, JSON round trips, the resume fix
(#8405), restores from files or by replay, compat_resume_bug, and malformed states.

The continuation a resumed sampler must give is the uninterrupted stream of a second
sampler of the same configuration (DeepSpeed's recorded stream where it covers it).
"""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest

from algoperf_reinit.data_efficiency import (
    DeepSpeedDataSampler,
    _sampler_restore,
    _sampler_state,
)
from tests.data_efficiency.test_sampler_reference import (
    CASES,
    FIXTURE_VALUES,
    N,
    ReferenceSampler,
    config,
    copy_analysis,
    metric,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*not a multiple of 8",
                                        "ignore:.*wraps only once")
TWO = "two_clustering_metrics_intersection"
ONE = "value_single_metric_linear"
KEYS = {"batch", "consumed_samples", "curriculum_step", "current_difficulties",
        "data_cluster_paths", "data_cluster_current_position", "np_rng_state",
        "data_cluster_crc32"}


def make(root, name=TWO, **kwargs):
    case = CASES[name]
    if not (root / "analysis").exists():
        copy_analysis(root)
    return DeepSpeedDataSampler(config(case["metrics"], case["seed"]), N,
                                case["micro_batch_size"], 0, case["dp_size"],
                                case["gradient_accumulation_steps"], base_path=root, **kwargs)


def run(sampler, count):
    stream = iter(sampler)
    return [next(stream).tolist() for _ in range(count)]


def json_round_trip(state):
    return json.loads(json.dumps(state))


@pytest.fixture
def replays(monkeypatch):
    """The number of restores that replayed the stream (instead of reading files)."""
    calls = []
    original = _sampler_restore._replay

    def counting(sampler, st):
        calls.append(st.curriculum_step)
        original(sampler, st)

    monkeypatch.setattr(_sampler_restore, "_replay", counting)
    return calls


class TestStateDict:
    def test_deepspeed_keys_and_values_after_three_micro_batches(self, tmp_path):
        sampler = make(tmp_path, ONE)
        first = run(sampler, 3)
        state = sampler.state_dict()
        assert set(state) == KEYS
        record = CASES[ONE]["micro_batches"][3]
        assert state["curriculum_step"] == 2
        assert state["current_difficulties"] == {"a": 24}
        assert state["data_cluster_paths"] == ["cluster_a16", "cluster_a24"]
        assert state["data_cluster_current_position"] == record["cluster_positions"]
        assert state["batch"] == record["micro_batch"]  # the rest of global batch 2
        assert state["consumed_samples"] == 12 == sum(map(len, first))
        assert json_round_trip(state) == state
        # A checkpoint written with sorted keys restores the config order of the metrics.
        two = make(tmp_path / "two")
        run(two, 3)
        shuffled = json.loads(json.dumps(two.state_dict(), sort_keys=True))
        shuffled["current_difficulties"] = dict(reversed(
            list(shuffled["current_difficulties"].items())))
        again = make(tmp_path / "two")
        again.load_state_dict(shuffled)
        assert list(again.current_difficulties) == ["a", "b"]
        assert again.state_dict() == two.state_dict()

    def test_rng_state_is_the_samplers_own_generator(self, tmp_path):
        sampler = make(tmp_path)
        run(sampler, 5)
        saved = sampler.state_dict()["np_rng_state"]
        generator = np.random.default_rng()
        generator.bit_generator.state = _sampler_state.decode_rng(saved)
        assert generator.bit_generator.state == sampler._rng.bit_generator.state
        assert isinstance(saved["state"]["state"], str)  # 128-bit ints as strings

    def test_process_wide_numpy_rng_is_never_touched(self, tmp_path):
        np.random.seed(5)  # noqa: NPY002 (the legacy global RNG is what is checked)
        before = np.random.get_state()[1].copy()  # noqa: NPY002
        sampler = make(tmp_path)
        run(sampler, 10)
        again = make(tmp_path / "x", compat_resume_bug=True)
        shutil.copytree(tmp_path / "clusters", tmp_path / "x" / "clusters", dirs_exist_ok=True)
        again.load_state_dict(sampler.state_dict())
        run(again, 10)
        assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


class TestResume:
    @pytest.mark.parametrize("k", [0, 1, 2, 3, 7, 8, 13, 20, 31])
    def test_continues_the_uninterrupted_stream(self, tmp_path, k, replays):
        # Every k (odd k: mid global batch); clusters reshuffle from the second batch on.
        whole = run(make(tmp_path / "whole"), k + 30)
        first = make(tmp_path / "run")
        assert run(first, k) == whole[:k]
        state = json_round_trip(first.state_dict())
        resumed = make(tmp_path / "run")
        resumed.load_state_dict(state)
        assert run(resumed, 30) == whole[k:]
        assert resumed.consumed_samples == sum(map(len, whole))
        assert replays == []  # the files matched

    def test_continues_deepspeeds_recorded_stream_after_a_reshuffle(self, tmp_path):
        recorded = [r["micro_batch"] for r in CASES[ONE]["micro_batches"]]
        first = make(tmp_path, ONE)
        run(first, 9)  # cluster a16 (10 ids) was reshuffled at global batch 2
        resumed = make(tmp_path, ONE)
        resumed.load_state_dict(json_round_trip(first.state_dict()))
        assert run(resumed, len(recorded) - 9) == recorded[9:]

    def test_checkpoint_older_than_the_files_is_replayed(self, tmp_path, replays):
        # The run continued past the checkpoint (clusters reshuffled and rewritten),
        # then resumed from it: the CRCs no longer match, the stream is replayed.
        whole = run(make(tmp_path / "whole"), 60)
        first = make(tmp_path / "run")
        run(first, 10)
        state = json_round_trip(first.state_dict())
        run(first, 30)
        resumed = make(tmp_path / "run")
        resumed.load_state_dict(state)
        assert run(resumed, 50) == whole[10:]
        assert replays == [5]
        # The writer rewrote the files from the replayed clusters.
        reread = make(tmp_path / "run")
        reread.load_state_dict(resumed.state_dict())
        assert reread.state_dict() == resumed.state_dict() and replays == [5]

    def test_non_writer_without_files_replays(self, tmp_path, replays):
        whole = run(make(tmp_path / "whole"), 40)
        first = make(tmp_path / "a", write_clusters=False)
        run(first, 11)
        other = make(tmp_path / "b", write_clusters=False)
        other.load_state_dict(json_round_trip(first.state_dict()))
        assert run(other, 29) == whole[11:]
        assert replays == [6]
        assert not (tmp_path / "b" / "clusters").exists()

    def test_deepspeed_checkpoint_with_the_global_rng_state_is_replayed(self, tmp_path,
                                                                          replays):
        # DeepSpeed 0.19.8 saves np.random.get_state() (a tuple) and no CRCs.
        whole = run(make(tmp_path / "whole"), 40)
        first = make(tmp_path / "run")
        run(first, 12)
        state = first.state_dict()
        del state["data_cluster_crc32"]
        state["np_rng_state"] = list(np.random.RandomState(0).get_state())
        resumed = make(tmp_path / "run")
        resumed.load_state_dict(state)
        assert run(resumed, 28) == whole[12:]
        assert replays == [6]

    def test_schedulers_are_restored(self, tmp_path):
        # A custom schedule that reaches the max and then drops: sticky at max only if
        # the schedulers' difficulty is restored (DeepSpeed's are not).
        metrics = {"a": metric(lo=16, hi=64, schedule_type="custom",
                               index_to_sample_path="analysis/a/a_index_to_sample",
                               index_to_metric_path="analysis/a/a_index_to_metric")}
        del metrics["a"]["schedule_config"]

        def schedule(step):
            return 64 if step == 3 else 16 + step

        def build(root):
            copy_analysis(root) if not (root / "analysis").exists() else None
            s = DeepSpeedDataSampler(config(metrics), N, 4, 0, 1, 2, base_path=root)
            s.set_custom_curriculum_learning_schedule({"a": schedule})
            return s

        whole = run(build(tmp_path / "whole"), 20)
        first = build(tmp_path / "run")
        run(first, 8)
        resumed = build(tmp_path / "run")
        resumed.load_state_dict(first.state_dict())
        assert resumed.curriculum_schedulers["a"].current_difficulty == 64
        assert run(resumed, 12) == whole[8:]


class TestCompatResumeBug:
    def test_generator_restarts_from_the_seed(self, tmp_path):
        first = make(tmp_path)
        run(first, 11)  # mid global batch 6
        state = json_round_trip(first.state_dict())
        resumed = make(tmp_path, compat_resume_bug=True)
        resumed.load_state_dict(state)
        seeded = np.random.default_rng(CASES[TWO]["seed"]).bit_generator.state
        assert resumed._rng.bit_generator.state == seeded
        assert resumed.data_cluster_current_position == state["data_cluster_current_position"]
        # Its next global batch is the oracle's from these clusters and a fresh generator.
        ref = ReferenceSampler(CASES[TWO]["metrics"], FIXTURE_VALUES, N, 4, 1, 2)
        ref.step, ref.current = state["curriculum_step"], dict(state["current_difficulties"])
        ref.sched = dict(ref.current)
        ref.clusters = [resumed.cluster_ids(c).tolist() for c in
                        range(len(state["data_cluster_paths"]))]
        ref.positions, ref.batch = list(state["data_cluster_current_position"]), []
        ref.names = list(state["data_cluster_paths"])
        stream = iter(resumed)
        assert next(stream).tolist() == state["batch"]  # the rest of global batch 6
        batch = ref.next_global_batch()
        assert [next(stream).tolist() for _ in range(2)] == [batch[:4], batch[4:]]
        assert resumed.curriculum_step == 7

    def test_resumed_stream_differs_from_the_uninterrupted_one(self, tmp_path):
        # Spec §3.8 (recorded): resumed stream != uninterrupted stream.
        whole = run(make(tmp_path / "whole"), 40)
        first = make(tmp_path / "run")
        run(first, 10)
        resumed = make(tmp_path / "run", compat_resume_bug=True)
        resumed.load_state_dict(first.state_dict())
        assert run(resumed, 30) != whole[10:]

    def test_missing_cluster_file(self, tmp_path):
        first = make(tmp_path / "run")
        run(first, 4)
        state = first.state_dict()
        with pytest.raises(FileNotFoundError, match="re-opened by name under data_cluster_path"):
            make(tmp_path / "empty", compat_resume_bug=True).load_state_dict(state)


def base_state(tmp_path):
    sampler = make(tmp_path)
    run(sampler, 3)
    return sampler, sampler.state_dict()


class TestMalformedStates:
    @pytest.mark.parametrize(("key", "value", "error", "match"), [
        ("batch", [1, 64], ValueError, r"state_dict\['batch'\]\[1\] must be an int in \[0, 63\]"),
        ("batch", "1,2", TypeError, r"state_dict\['batch'\] must be a list of ints"),
        ("consumed_samples", -1, ValueError, r"state_dict\['consumed_samples'\] must be an int >= 0"),
        ("curriculum_step", 1.5, TypeError, r"state_dict\['curriculum_step'\] must be an int"),
        ("current_difficulties", {"a": 16}, ValueError,
         r"keyed by this configuration's metrics \['a', 'b'\]"),
        ("current_difficulties", {"a": 16, "b": "x"}, TypeError,
         r"state_dict\['current_difficulties'\]\['b'\] must be a real number"),
        ("current_difficulties", {}, ValueError, "empty exactly when curriculum_step is 0"),
        ("data_cluster_paths", [3, 4], TypeError, "must be a cluster file name"),
        ("data_cluster_current_position", [0], ValueError, "one cursor per cluster"),
        ("data_cluster_crc32", [1], ValueError, "one CRC per cluster"),
        ("np_rng_state", {"bit_generator": "PCG64", "state": {"state": 1}}, ValueError,
         "a dict with the keys 'state' and 'inc'"),
        ("np_rng_state", {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}},
         TypeError, "must be an integer"),
    ])
    def test_bad_value(self, tmp_path, key, value, error, match):
        sampler, state = base_state(tmp_path)
        state[key] = value
        with pytest.raises(error, match=match):
            sampler.load_state_dict(state)

    def test_missing_key(self, tmp_path):
        sampler, state = base_state(tmp_path)
        del state["np_rng_state"]
        with pytest.raises(ValueError, match=r"state_dict\['np_rng_state'\] must be given"):
            sampler.load_state_dict(state)

    def test_not_a_dict(self, tmp_path):
        with pytest.raises(TypeError, match="state_dict must be a dict from state_dict"):
            make(tmp_path).load_state_dict([1])

    def test_state_of_another_seed_is_caught_by_the_replay(self, tmp_path):
        _, state = base_state(tmp_path)
        case = CASES[TWO]
        other = DeepSpeedDataSampler(config(case["metrics"], seed=99), N, 4, 0, 1, 2,
                                     base_path=tmp_path)
        shutil.rmtree(tmp_path / "clusters")
        with pytest.raises(ValueError, match=r"what replaying the stream from the seed gives, got .*"
                                             r"; the checkpoint belongs to another"):
            other.load_state_dict(state)

    def test_old_absolute_cluster_paths_are_reduced_to_basenames(self, tmp_path):
        sampler, state = base_state(tmp_path)
        state["data_cluster_paths"] = [f"/old/place/{n}" for n in state["data_cluster_paths"]]
        expected = list(itertools.islice(iter(make(tmp_path / "w")), 23))[3:]
        sampler.load_state_dict(state)
        assert [b.tolist() for b in itertools.islice(iter(sampler), 20)] == \
            [b.tolist() for b in expected]
