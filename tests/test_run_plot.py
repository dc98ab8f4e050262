"""Tests for algoperf_reinit.run_plot: the trial's run_metrics.png.

The trial directories are written by hand (the files our runner and submissions
write, in their layout), so each test is fast and each optional file can be left out.
"""

from __future__ import annotations

import csv
import json
import warnings

import flax.serialization
import numpy as np
import pytest

from algoperf_reinit import _plot_run, run_plot
from algoperf_reinit._records import dumps_strict
from algoperf_reinit.run_plot import RUN_PLOT_FILE, draw_run_plot, read_run_metrics
from algoperf_reinit.schedules import ScheduleConfig, build_cycle_table, evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BEFORE = build_cycle_table(ScheduleConfig(cycle_fractions=(0.5, 0.5)), 400, 1e-3, 0.1,
                           capacity=4)
AFTER = build_cycle_table(ScheduleConfig(cycle_lengths=(150, 250)), 400, 1e-3, 0.1, capacity=4)


def _write_csv(path, rows):
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _entry(table):
    return {"table": {f: np.asarray(v).tolist() for f, v in zip(table._fields, table,
                                                                  strict=True)},
            "dtypes": {f: str(np.asarray(v).dtype) for f, v in zip(table._fields, table,
                                                                   strict=True)}}


def _trial(tmp_path, *, evals=True, logged=True, events=True, summary=True, history=True,
           current=True):
    trial = tmp_path / "exp" / "digits_jax" / "trial_1"
    trial.mkdir(parents=True)
    if evals:
        _write_csv(trial / "eval_measurements.csv", [
            {"global_step": s, "validation/accuracy": a, "validation/loss": 1 / (s + 1),
             "validation/num_examples": 300, "train/loss": 2 / (s + 1), "score": s / 10}
            for s, a in ((1, 0.1), (100, 0.8), (200, 0.95), (300, 0.97))])
    if logged:
        _write_csv(trial / "measurements.csv", [
            {"global_step": s, "loss": 3 / (s + 1), "learning_rate": float(AFTER(s)), "cycle": 0}
            for s in (0, 100, 200, 300)] + [{"global_step": 300, "score": 30.0}])
    if events:
        _write_csv(trial / "events.csv", [
            {"global_step": 150, "cycle": 1, "kind": "early_stop", "reason": "plateau"},
            {"global_step": 150, "cycle": 1, "kind": "reset", "reason": "cycle 1 began"},
            {"global_step": 280, "cycle": 1, "kind": "early_stop_skipped", "reason": "last"}])
    if summary:
        (trial / "summary.json").write_text(json.dumps({
            "global_steps": 320, "target_metric": "validation/accuracy", "target_value": 0.96,
            "target_lower_is_better": False}))
    if history:
        data = {"version": 1, "entries": [{"step": 150, **_entry(BEFORE)}]}
        if current:
            data["current"] = _entry(AFTER)
        (trial / "schedule_history.json").write_text(dumps_strict(data))  # inf -> null
    return trial


def _line(ax, label):
    (line,) = [artist for artist in ax.get_lines() if artist.get_label() == label]
    return line


def test_writes_run_metrics_png_in_the_trial_directory_deterministically(tmp_path):
    trial = _trial(tmp_path)
    out = draw_run_plot(trial, dpi=30)
    assert out == trial / RUN_PLOT_FILE
    first = out.read_bytes()
    assert first.startswith(PNG_SIGNATURE)
    again = draw_run_plot(trial, path=tmp_path / "again.png", dpi=30).read_bytes()
    assert again == first


def test_reads_the_target_metric_target_losses_and_events(tmp_path):
    m = read_run_metrics(_trial(tmp_path))
    assert m.title == "exp/digits_jax/trial_1"
    assert (m.metric, m.target, m.lower_is_better) == ("validation/accuracy", 0.96, False)
    assert m.metric_values.step.tolist() == [1, 100, 200, 300]
    assert m.metric_values.value.tolist() == [0.1, 0.8, 0.95, 0.97]
    assert m.batch_loss.step.tolist() == [0, 100, 200, 300]  # the score row has no loss
    assert m.train_loss.value[0] == pytest.approx(1.0)
    assert [(e.step, e.kind) for e in m.events] == [
        (150, "early_stop"), (150, "reset"), (280, "early_stop_skipped")]
    assert m.stopped_at == 320.0


def test_the_learning_rate_is_the_schedule_the_run_applied(tmp_path):
    m = read_run_metrics(_trial(tmp_path))
    assert m.lr_from_schedule
    t, v = m.learning_rate
    want = np.where(t < 150, np.asarray(evaluate(BEFORE, t.astype(np.float32))),
                    np.asarray(evaluate(AFTER, t.astype(np.float32))))
    np.testing.assert_allclose(v, want, rtol=1e-6)
    assert t[-1] == 400.0


def test_the_current_table_comes_from_the_newest_checkpoint_without_a_current_entry(tmp_path):
    trial = _trial(tmp_path, current=False)
    state = {"optimizer_state": {"optax": {"1": {"table": dict(zip(
        BEFORE._fields, map(np.asarray, BEFORE), strict=True))}},
        "reinit": {"table": dict(zip(AFTER._fields, map(np.asarray, AFTER), strict=True))}}}
    (trial / "checkpoint_10.msgpack").write_bytes(b"not msgpack")
    (trial / "checkpoint_320.msgpack").write_bytes(flax.serialization.msgpack_serialize(state))
    table = _plot_run.read_run(trial).table
    assert table.boundaries() == AFTER.boundaries()  # the reinit state's, not the optax copy
    assert read_run_metrics(trial).lr_from_schedule


def _checksummed(state):
    import hashlib

    body = flax.serialization.msgpack_serialize(state)
    return flax.serialization.msgpack_serialize(
        {"format": "algoperf_reinit.runner/2", "sha256": hashlib.sha256(body).hexdigest(),
         "body": body})


def test_checksummed_checkpoints_are_read_and_a_corrupt_one_passed_over(tmp_path):
    trial = _trial(tmp_path, history=False)
    table = lambda t: {"reinit": {"table": dict(zip(  # noqa: E731
        t._fields, map(np.asarray, t), strict=True))}}
    (trial / "checkpoint_100.msgpack").write_bytes(_checksummed(table(BEFORE)))
    assert _plot_run.read_run(trial).table.boundaries() == BEFORE.boundaries()
    newest = bytearray(_checksummed(table(AFTER)))
    (trial / "checkpoint_300.msgpack").write_bytes(bytes(newest))
    assert _plot_run.read_run(trial).table.boundaries() == AFTER.boundaries()
    newest[-5] ^= 0xFF  # a flipped byte inside the body: the checksum fails
    (trial / "checkpoint_300.msgpack").write_bytes(bytes(newest))
    assert _plot_run.read_run(trial).table.boundaries() == BEFORE.boundaries()


def test_schedule_independent_events_are_left_out_and_stale_history_dropped(tmp_path):
    trial = _trial(tmp_path)
    with (trial / "events.csv").open("a") as f:
        f.write("1,0,plateau_metric,validation/loss\n290,2,non_finite,loss nan\n")
    assert [e.kind for e in _plot_run.read_run(trial).events] == [
        "early_stop", "reset", "early_stop_skipped"]  # as the submission's lr_schedule.png
    kinds = [e.kind for e in read_run_metrics(trial).events]
    assert kinds == ["early_stop", "reset", "early_stop_skipped", "non_finite"]
    # A history entry whose early stop is no longer in events.csv (a resumed run) is dropped.
    rows = (trial / "events.csv").read_text().splitlines()
    (trial / "events.csv").write_text("\n".join(r for r in rows if "early_stop," not in r))
    assert _plot_run.read_run(trial).history == ()


def test_without_a_table_the_logged_learning_rate_is_drawn(tmp_path):
    m = read_run_metrics(_trial(tmp_path, history=False))
    assert not m.lr_from_schedule
    assert m.learning_rate.step.tolist() == [0, 100, 200, 300]
    fig = run_plot._figure(m, dpi=30)
    assert _line(fig.axes[2], "learning rate (logged)").get_marker() == "."


def test_the_figure_has_the_target_line_and_events_on_every_panel(tmp_path):
    m = read_run_metrics(_trial(tmp_path))
    fig = run_plot._figure(m, dpi=30)
    fig.canvas.draw()
    metric_ax, loss_ax, lr_ax = fig.axes
    assert _line(metric_ax, "validation/accuracy").get_ydata().tolist() == [0.1, 0.8, 0.95, 0.97]
    target = _line(metric_ax, "target 0.96, higher is better")
    assert list(target.get_ydata()) == [0.96, 0.96]
    assert loss_ax.get_yscale() == "log"
    for ax in fig.axes:
        reset, stop = _line(ax, "reset"), _line(ax, "early stop")
        assert list(reset.get_xdata()) == list(stop.get_xdata()) == [150.0]
        # Coinciding markers are stacked: one marker apart at least.
        assert stop.get_ydata()[0] - reset.get_ydata()[0] > 0.05
        assert list(_line(ax, "early stop skipped").get_xdata()) == [280.0]
        assert list(_line(ax, "training stopped at 320").get_xdata()) == [320, 320]
        # The strip is above the data.
        to_axes = ax.transData + ax.transAxes.inverted()
        data_top = to_axes.transform((0, max(
            np.nanmax(line.get_ydata()) for line in ax.get_lines()
            if line.get_transform() == ax.transData)))[1]
        assert data_top < 0.93 - 0.085
    assert [t.get_text() for t in lr_ax.get_yticklabels()].count("1e-3") == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[-1] == "training stopped at 320"
    assert legend.count("reset") == 1


def test_only_eval_measurements_is_enough(tmp_path):
    trial = _trial(tmp_path, logged=False, events=False, summary=False, history=False)
    m = read_run_metrics(trial)
    assert m.metric == "validation/loss"  # no summary: the loss is preferred
    assert (m.target, m.stopped_at, m.events) == (None, None, ())
    assert m.learning_rate.step.size == 0
    fig = run_plot._figure(m, dpi=30)
    assert "no learning rate recorded" in [t.get_text() for t in fig.axes[2].texts]
    assert draw_run_plot(trial, dpi=30).is_file()


def test_only_measurements_is_enough(tmp_path):
    trial = _trial(tmp_path, evals=False, events=False, summary=False, history=False)
    m = read_run_metrics(trial)
    assert m.metric is None
    fig = run_plot._figure(m, dpi=30)
    assert "no evaluations recorded" in [t.get_text() for t in fig.axes[0].texts]
    assert draw_run_plot(trial, dpi=30).is_file()


def test_explicit_metric_and_target(tmp_path):
    m = read_run_metrics(_trial(tmp_path), metric="validation/loss", target=0.01)
    assert (m.metric, m.target, m.lower_is_better) == ("validation/loss", 0.01, None)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(metric="validation/wer"), ValueError,
     r"metric must be a validation metric of eval_measurements.csv, got 'validation/wer'; "
     r"available: \['validation/accuracy', 'validation/loss'\]"),
    (dict(target="high"), TypeError, "target must be a real number"),
    (dict(dpi=0), ValueError, "dpi"),
    (dict(path="out.jpg"), ValueError, r"\.png"),
])
def test_bad_arguments_are_rejected(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        draw_run_plot(_trial(tmp_path), **kwargs)


def test_a_trial_dir_must_exist_and_hold_a_csv(tmp_path):
    with pytest.raises(ValueError, match="trial_dir must be an existing directory, got"):
        draw_run_plot(tmp_path / "missing")
    with pytest.raises(TypeError, match="trial_dir must be"):
        draw_run_plot(3)
    with pytest.raises(ValueError, match=r"must hold eval_measurements\.csv or measurements\.csv"):
        draw_run_plot(tmp_path)
    assert not (tmp_path / RUN_PLOT_FILE).exists()


def test_malformed_events_and_history_are_named(tmp_path):
    trial = _trial(tmp_path)
    with (trial / "events.csv").open("a") as f:
        f.write("soon,1,reset,x\n")
    with pytest.raises(ValueError, match=r"events.csv row 5 must have a numeric global_step"):
        draw_run_plot(trial)
    (trial / "events.csv").unlink()
    (trial / "schedule_history.json").write_text("{")
    with pytest.raises(ValueError, match=r"schedule_history\.json must be JSON"):
        draw_run_plot(trial)


def test_file_names_are_those_the_submissions_write():
    from algoperf_reinit.runner.experiment import SUMMARY_JSON
    from algoperf_reinit.submission import _events

    assert (_plot_run.EVENTS_FILE, _plot_run.HISTORY_FILE) == (_events.EVENTS_FILE,
                                                               _events.HISTORY_FILE)
    assert _plot_run.SUMMARY_FILE == SUMMARY_JSON


def test_a_diverged_run_is_drawn(tmp_path):
    trial = _trial(tmp_path, events=False)
    _write_csv(trial / "measurements.csv", [
        {"global_step": 0, "loss": 2.0, "learning_rate": 1.0},
        {"global_step": 100, "loss": "inf", "learning_rate": 1.0},
        {"global_step": 200, "loss": "nan", "learning_rate": 1.0}])
    _write_csv(trial / "eval_measurements.csv", [
        {"global_step": s, "validation/loss": "nan", "train/loss": "nan"} for s in (1, 100)])
    (trial / "events.csv").write_text("global_step,cycle,kind,reason\n100,0,non_finite,loss inf\n")
    m = read_run_metrics(trial, metric="validation/loss")
    assert np.isnan(m.metric_values.value).all() and m.batch_loss.value[1] == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = draw_run_plot(trial, dpi=30)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    fig = run_plot._figure(m, dpi=30)
    assert list(_line(fig.axes[1], "non finite").get_xdata()) == [100.0]
