"""Tests for ``python -m algoperf_reinit`` (algoperf_reinit.__main__.main)."""

from __future__ import annotations

import pytest

from algoperf_reinit.__main__ import main, showcase_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_default_showcase_writes_png_and_prints_table(tmp_path, capsys):
    out = tmp_path / "sub" / "lr.png"
    assert main(["--output", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["cycle", "start", "end"]
    # Short first cycle, then alter_lr (0, +25 %, -25 %) of 2e-3 and alter_warmup (0, .02, 0).
    assert lines[1].split()[:6] == ["0", "0", "2000", "100", "0", "0.002"]
    assert lines[2].split()[:6] == ["1", "2000", "6000", "280", "0", "0.0025"]
    assert lines[3].split()[:6] == ["2", "6000", "10000", "200", "0", "0.0015"]
    assert lines[-1] == f"wrote {out.resolve()}"


def test_flags_change_the_schedule(tmp_path, capsys):
    out = tmp_path / "lr.png"
    argv = ["--output", str(out), "--step_hint", "900", "--learning_rate", "0.1",
            "--warmup_factor", "0.1", "--num_cycles", "5"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 5 + 1
    assert lines[-2].split()[2] == "900"  # the last cycle ends at the budget
    assert out.is_file()


def test_default_output_is_relative_to_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--step_hint", "300", "--num_cycles", "1"]) == 0
    assert (tmp_path / "runs" / "lr_schedule.png").is_file()
    assert "runs/lr_schedule.png" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output", "lr.jpg"], ".png"),
        (["--num_cycles", "0"], "num_cycles"),
        (["--warmup_factor", "0.99"], "warmup fraction"),
        (["--step_hint", "2", "--num_cycles", "3"], "cycles do not fit"),
        (["--learning_rate", "abc"], "learning_rate"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_showcase_config_repeats_the_alteration_pattern():
    config = showcase_config(1e-3, 4)
    assert config.num_cycles == 4
    assert config.alter_lr == pytest.approx((0.0, 2.5e-4, -2.5e-4, 0.0))
    assert config.alter_warmup == (0.0, 0.02, 0.0, 0.0)
    assert config.cycle_fractions == pytest.approx((0.5 / 3.5, 1 / 3.5, 1 / 3.5, 1 / 3.5))
    assert showcase_config(1e-3, 1).cycle_fractions == (1.0,)
    with pytest.raises(ValueError, match="num_cycles"):
        showcase_config(1e-3, 0)


# ------------------------------------------------------------------ any ScheduleConfig


def _printed_table(capsys):
    return capsys.readouterr().out.splitlines()[:-1]


def _expected_table(config, step_hint=10_000, lr=2e-3, warmup=0.05):
    from algoperf_reinit.plotting import describe_table
    from algoperf_reinit.schedules import jax_lr_schedule

    hp = {"learning_rate": lr, "warmup_factor": warmup}
    return describe_table(jax_lr_schedule(step_hint, hp, config).schedule).splitlines()


def test_there_is_a_flag_for_every_schedule_config_field():
    import dataclasses

    from algoperf_reinit.__main__ import FIELD_FLAGS
    from algoperf_reinit.schedules import ScheduleConfig

    assert list(FIELD_FLAGS) == [f.name for f in dataclasses.fields(ScheduleConfig)]


# One value per field, each giving a table that differs from the default one.
FIELD_CASES = [
    (["--num_cycles", "4"], dict(num_cycles=4)),
    (["--cycle_lengths", "1000,3000,6000"], dict(cycle_lengths=(1000, 3000, 6000))),
    (["--cycle_lengths", "4000"], dict(cycle_lengths=(4000,))),
    (["--cycle_fractions", "[0.2, 0.8]"], dict(cycle_fractions=(0.2, 0.8))),
    (["--num_cycles", "3", "--cycle_mul", "2"], dict(num_cycles=3, cycle_mul=2.0)),
    (["--num_cycles", "3", "--cycle_decay", "0.5"], dict(num_cycles=3, cycle_decay=0.5)),
    (["--num_cycles", "4", "--cycle_limit", "2"], dict(num_cycles=4, cycle_limit=2)),
    (["--warmup_shapes", "cosine,polynomial"], dict(warmup_shapes=("cosine", "polynomial"))),
    (["--decay_shapes", "linear"], dict(decay_shapes="linear")),
    (["--alter_lr", "0,5e-4,-5e-4"], dict(alter_lr=(0.0, 5e-4, -5e-4))),
    (["--alter_warmup", "0,0.1"], dict(alter_warmup=(0.0, 0.1))),
    (["--lr_scales", "1,0.5"], dict(lr_scales=(1.0, 0.5))),
    (["--warmup_scales", "2"], dict(warmup_scales=2.0)),
    (["--init_value", "1e-5"], dict(init_value=1e-5)),
    (["--end_value", "1e-4,2e-4"], dict(end_value=(1e-4, 2e-4))),
    (["--end_factor", "0.1"], dict(end_factor=0.1)),
    (["--clock", "seconds", "--step_hint", "901"], dict(clock="seconds")),
]


@pytest.mark.parametrize(("argv", "fields"), FIELD_CASES, ids=[c[0][-2] for c in FIELD_CASES])
def test_each_field_flag_builds_that_schedule_config(tmp_path, capsys, argv, fields):
    from algoperf_reinit.schedules import ScheduleConfig

    step_hint = 901 if fields.get("clock") == "seconds" else 10_000
    assert main(["--output", str(tmp_path / "lr.png"), *argv]) == 0
    printed = _printed_table(capsys)
    assert printed == _expected_table(ScheduleConfig(**fields), step_hint=step_hint)
    assert printed != _expected_table(ScheduleConfig(), step_hint=step_hint)


def test_one_value_is_a_scalar_and_a_json_list_a_sequence():
    import argparse

    from algoperf_reinit.__main__ import FIELD_FLAGS, schedule_fields

    args = argparse.Namespace(config=None, **dict.fromkeys(FIELD_FLAGS))
    args.alter_lr, args.lr_scales, args.cycle_fractions = "1e-3", "[0.5]", "1"
    assert schedule_fields(args) == dict(cycle_fractions=(1.0,), alter_lr=1e-3,
                                         lr_scales=(0.5,))


def test_shapes_with_parameters_as_json_objects(tmp_path, capsys):
    from algoperf_reinit.schedules import Decay, ScheduleConfig, Warmup

    argv = ["--output", str(tmp_path / "lr.png"), "--num_cycles", "3",
            "--warmup_shapes", '{"kind": "polynomial", "power": 3}',
            "--decay_shapes", '[{"kind": "wsd", "decay_fraction": 0.3, "wsd_kind": "1-sqrt"}, '
            '"cosine", {"kind": "exponential", "rate": 0.1}]']
    assert main(argv) == 0
    want = ScheduleConfig(num_cycles=3, warmup_shapes=Warmup.polynomial(3.0),
                          decay_shapes=(Decay.wsd(0.3, "1-sqrt"), "cosine",
                                        Decay.exponential(0.1)))
    assert _printed_table(capsys) == _expected_table(want)
    # The seed's key in a config file takes objects too.
    (tmp_path / "c.json").write_text('{"decay_schedule_fns": [{"kind": "polynomial", '
                                     '"power": 4}, "linear"]}')
    assert main(["--output", str(tmp_path / "lr.png"), "--config", str(tmp_path / "c.json")]) == 0
    want = ScheduleConfig(decay_shapes=(Decay.polynomial(4.0), "linear"))
    assert _printed_table(capsys) == _expected_table(want)


@pytest.mark.parametrize(("value", "message"), [
    ('{"kid": "wsd"}', "error: decay_shapes must be a shape name or an object of Decay "
     "fields ['kind', "),
    ('["cosine", {"kind": "wsd", "decay_fraction": 3}]',
     "error: decay_shapes[1]: Decay.decay_fraction must be in (0, 1], got 3"),
])
def test_bad_shape_objects(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit):
        main(["--output", str(tmp_path / "lr.png"), "--decay_shapes", value])
    assert message in capsys.readouterr().err


def test_config_file_with_flags_on_top(tmp_path, capsys):
    from algoperf_reinit.schedules import ScheduleConfig

    config = tmp_path / "schedule.json"
    # The seed design's names work in the file; flags override its keys.
    config.write_text('{"alter_decays": [0.0, 0.001, 0.0], "decay_shapes": "linear", '
                      '"cycle_decay": 0.5}')
    argv = ["--output", str(tmp_path / "lr.png"), "--config", str(config),
            "--decay_shapes", "cosine,linear,wsd", "--step_hint", "3000"]
    assert main(argv) == 0
    want = ScheduleConfig(alter_lr=(0.0, 1e-3, 0.0), cycle_decay=0.5,
                          decay_shapes=("cosine", "linear", "wsd"))
    assert _printed_table(capsys) == _expected_table(want, step_hint=3000)


def test_a_config_without_events_is_drawn_with_the_given_title(tmp_path, monkeypatch, capsys):
    from algoperf_reinit import plotting

    calls = []
    monkeypatch.setattr(plotting, "plot_schedule",
                        lambda table, path, **kwargs: calls.append(kwargs) or path)
    assert main(["--output", "x.png", "--num_cycles", "2", "--title", "mine"]) == 0
    assert calls == [dict(budget=10_000, title="mine")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alter_lr", "abc"], "error: --alter_lr must be a number, comma-separated numbers "
         "or a JSON list of numbers, got 'abc'"),
        (["--num_cycles", "2.5"], "error: --num_cycles must be an integer, got '2.5'"),
        (["--cycle_lengths", '{"a": 1}'], "error: --cycle_lengths must be a number, "
         "comma-separated numbers or a JSON list of numbers, got '{\"a\": 1}'"),
        (["--cycle_mul", "-1"], "error: cycle_mul must be > 0, got -1.0"),
        (["--decay_shapes", "cosine,bogus"], "error: decay_shapes[1] must be one of"),
        (["--clock", "hours"], "error: clock must be one of 'steps', 'seconds', "),
        (["--clock", "hours"], "got 'hours'"),
        (["--end_factor", "2"], "error: end_factor must be in [0, 1], got 2.0"),
        (["--alter_lr", "0,1e-3", "--num_cycles", "3"],
         "error: per-cycle settings disagree on the number of cycles (alter_lr=2, num_cycles=3)"),
        (["--config", "missing.json"], "error: --config must be an existing JSON file, got "
         "'missing.json'"),
    ],
)
def test_bad_field_values_name_the_field_the_value_and_the_rule(tmp_path, monkeypatch, capsys,
                                                                 argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "--config must hold a JSON object of ScheduleConfig fields, got a list"),
    ("{", "--config must be a JSON file, got 'c.json' (Expecting property name"),
    ('{"num_cycle": 2}', "schedule_params key must be one of"),
])
def test_bad_config_files(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(SystemExit):
        main(["--config", "c.json"])
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ a run directory


def _run_dir(tmp_path, *, current=True):
    import json

    import numpy as np

    from algoperf_reinit._records import dumps_strict
    from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table

    def entry(table):
        return {"table": {f: np.asarray(v).tolist() for f, v in zip(table._fields, table,
                                                                      strict=True)},
                "dtypes": {f: str(np.asarray(v).dtype) for f, v in zip(table._fields, table,
                                                                       strict=True)}}

    before = build_cycle_table(ScheduleConfig(num_cycles=2), 400, 1e-3, 0.1, capacity=4)
    after = build_cycle_table(ScheduleConfig(cycle_lengths=(150, 250)), 400, 1e-3, 0.1,
                              capacity=4)
    trial = tmp_path / "exp" / "digits_jax" / "trial_1"
    trial.mkdir(parents=True)
    data = {"version": 1, "entries": [{"step": 150, **entry(before)}]}
    if current:
        data["current"] = entry(after)
    (trial / "schedule_history.json").write_text(dumps_strict(data))
    (trial / "events.csv").write_text("global_step,cycle,kind,reason\n150,1,early_stop,p\n"
                                      "150,1,reset,r\n300,1,early_stop_skipped,s\n")
    (trial / "summary.json").write_text(json.dumps({"global_steps": 350}))
    return trial, before, after


def test_run_dir_draws_the_schedule_the_run_applied(tmp_path, monkeypatch, capsys):
    from algoperf_reinit import plotting

    trial, before, after = _run_dir(tmp_path)
    calls = []
    real = plotting.plot_schedule
    monkeypatch.setattr(plotting, "plot_schedule", lambda table, path, **kwargs: (
        calls.append((table, kwargs)), real(table, path, dpi=30, **kwargs))[1])
    out = tmp_path / "run.png"
    assert main(["--run_dir", str(trial), "--output", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    ((table, kwargs),) = calls
    assert table.boundaries() == after.boundaries() == [0.0, 150.0, 400.0]
    ((step, old),) = kwargs["history"]
    assert step == 150 and old.boundaries() == before.boundaries()
    assert [(e.step, e.kind) for e in kwargs["events"]] == [
        (150, "early_stop"), (150, "reset"), (300, "early_stop_skipped")]
    assert kwargs["stopped_at"] == 350
    assert kwargs["title"] == "exp/digits_jax/trial_1: the schedule as run, 1 early stop applied"
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[1:3] == ["150", "400"] and lines[-1] == f"wrote {out.resolve()}"


@pytest.mark.parametrize(("argv", "message"), [
    (["--run_dir", "nowhere"], "error: --run_dir must be an existing trial directory, got "
     "'nowhere'"),
    (["--run_dir", "exp"], "error: --run_dir must hold the run's cycle table (a "
     "checkpoint_<step>.msgpack or a 'current' entry in schedule_history.json), got 'exp' with "
     "neither; it holds trial directories: give one, e.g. 'exp/digits_jax/trial_1'"),
    (["--run_dir", "exp/digits_jax/trial_1"], "got 'exp/digits_jax/trial_1' with neither; run "
     "with --save_checkpoints"),
    (["--run_dir", "exp", "--num_cycles", "2"], "error: --run_dir draws the run's own "
     "schedule: give it without --config and field flags, got ['num_cycles']"),
])
def test_bad_run_dirs(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    _run_dir(tmp_path, current=False)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
