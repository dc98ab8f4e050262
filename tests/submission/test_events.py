"""The run's event log: events.csv, the schedule history and the PNG across a resume."""

import csv
import json
import pathlib

import numpy as np

from algoperf_reinit.reinit import ReinitEvent
from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table
from algoperf_reinit.submission import EventLog


def tables():
    before = build_cycle_table(ScheduleConfig(cycle_fractions=(0.5, 0.5)), 1000, 1e-3, 0.1,
                               capacity=4)
    after = build_cycle_table(ScheduleConfig(cycle_fractions=(0.3, 0.7)), 1000, 1e-3, 0.1,
                              capacity=4)
    return before, after


def stop(step):
    return ReinitEvent(step, 0, "early_stop", "plateau", {"smoothed": 0.5}, [0, 500, 1000],
                       [0, step, 1000])


def test_an_early_stop_keeps_the_superseded_table(tmp_path):
    before, after = tables()
    log = EventLog(tmp_path, title="t", plot=False)
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    assert [s for s, _ in log.history] == [300]
    np.testing.assert_array_equal(log.history[0][1].start, np.asarray(before.start))
    saved = json.loads((tmp_path / "schedule_history.json").read_text())
    assert [e["step"] for e in saved["entries"]] == [300]

    resumed = EventLog(tmp_path, title="t", plot=False)
    resumed.start(before)
    assert [s for s, _ in resumed.history] == [300]
    for a, b in zip(resumed.history[0][1], before, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).dtype == np.asarray(b).dtype


def test_history_follows_events_csv_when_a_resume_drops_rows(tmp_path):
    before, after = tables()
    log = EventLog(tmp_path, title="t", plot=False)
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    # A runner resuming from a checkpoint before step 300 drops that row.
    with (tmp_path / "events.csv").open() as f:
        header = next(csv.reader(f))
    with (tmp_path / "events.csv").open("w", newline="") as f:
        csv.writer(f).writerow(header)
    resumed = EventLog(tmp_path, title="t", plot=False)
    resumed.start(before)
    assert resumed.history == []


def test_check_current_redraws_a_restored_table_once(tmp_path):
    before, after = tables()
    log = EventLog(tmp_path, title="t", plot=True)
    log.start(before)
    first = (tmp_path / "lr_schedule.png").read_bytes()
    log.check_current(after, built=before)
    assert log.checked and (tmp_path / "lr_schedule.png").read_bytes() != first


def test_the_built_table_is_not_drawn_again_and_an_unchanged_table_adds_no_history(
        tmp_path, monkeypatch):
    before, after = tables()
    log = EventLog(tmp_path, title="t", plot=False)
    log.start(before)
    drawn = []
    monkeypatch.setattr(log, "_draw", drawn.append)
    log.check_current(before, built=before)  # a fresh run: nothing to redraw
    assert log.checked and drawn == []
    log.record([stop(300)], before=before, after=before)  # a stop that changed nothing
    assert log.history == [] and drawn == [before]
    log.record([stop(300)], before=before, after=after)
    assert [s for s, _ in log.history] == [300] and drawn == [before, after]


def test_event_messages_say_a_skipped_stop_once_per_cycle():
    from algoperf_reinit.submission import event_message

    skipped = {"global_step": "40", "kind": "early_stop_skipped", "cycle": "2", "reason": "r"}
    assert event_message(skipped, []) == "event @ step 40: early_stop_skipped (cycle 2, r)"
    assert event_message(dict(skipped, global_step="60"), [skipped]) is None
    assert event_message(dict(skipped, cycle="3"), [skipped]) is not None
    reset = dict(skipped, kind="reset")
    assert event_message(reset, [reset]) == "event @ step 40: reset (cycle 2, r)"


def test_run_artifacts_name_every_file_the_event_log_writes(tmp_path):
    from algoperf_reinit.submission import run_artifacts

    before, after = tables()
    log = EventLog(tmp_path, title="t")
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    patterns = [a.name for a in run_artifacts()]
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written and all(any(pathlib.Path(n).match(pat) for pat in patterns) for n in written)
    (events,) = [a for a in run_artifacts() if a.step_column]
    assert events.name == "events.csv" and events.step_column in csv.DictReader(
        (tmp_path / "events.csv").open()).fieldnames


def test_schedule_history_is_strict_json_and_reads_back(tmp_path):
    before, after = tables()
    log = EventLog(tmp_path, title="t", plot=False)
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    text = (tmp_path / "schedule_history.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    resumed = EventLog(tmp_path, title="t", plot=False)
    resumed.start(before)
    for a, b in zip(resumed.history[0][1], before, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # +inf padding back


def test_only_process_0_writes_files(tmp_path, monkeypatch):
    import jax

    before, after = tables()
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    log = EventLog(tmp_path / "run", title="t", plot=True)
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    log.check_current(after, built=before)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    log = EventLog(tmp_path / "run", title="t", plot=True)
    log.start(before)
    log.record([stop(300)], before=before, after=after)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "events.csv", "lr_schedule.png", "schedule_history.json"]


def test_skipped_stops_are_drawn_and_the_metric_choice_is_not(tmp_path, monkeypatch):
    import algoperf_reinit.plotting as plotting

    before, _ = tables()
    drawn = []
    monkeypatch.setattr(plotting, "plot_schedule",
                        lambda table, path, **kw: drawn.append([e.kind for e in kw["events"]]))
    log = EventLog(tmp_path, title="t", plot=True)
    log.start(before)
    skipped = stop(400)._replace(kind="early_stop_skipped")
    chosen = stop(1)._replace(kind="plateau_metric", reason="validation/loss (min)")
    log.record([chosen, skipped], before=before, after=before)
    assert drawn[-1] == ["early_stop_skipped"]
    kinds = [r["kind"] for r in csv.DictReader((tmp_path / "events.csv").open())]
    assert kinds == ["plateau_metric", "early_stop_skipped"]
