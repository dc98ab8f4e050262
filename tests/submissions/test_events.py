"""The run's event log: events.csv, the schedule history and the PNG across a resume."""

import csv
import json

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
    log.record([stop(300)], after)
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
    log.record([stop(300)], after)
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
    log.check_current(after)
    assert log.checked and (tmp_path / "lr_schedule.png").read_bytes() != first
