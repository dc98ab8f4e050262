"""Runner parts: compile counting, the metrics logger, progress output, loading."""

import io

import jax
import jax.numpy as jnp
import pytest

from algoperf_reinit.runner import CompileCounter, MetricLogger, load_submission, read_csv
from algoperf_reinit.runner.loading import resolve_batch_size
from algoperf_reinit.runner.progress import Progress


def test_compile_counter_counts_backend_compiles_by_phase():
    @jax.jit
    def f(x):
        return x * 2 + 1

    x3, x4, x5 = jnp.ones(3), jnp.ones(4), jnp.ones(5)  # eager ops compile too: not here
    with CompileCounter() as counter:
        with counter.timed(warmup=True):
            f(x3).block_until_ready()
        with counter.timed(warmup=False):
            f(x3).block_until_ready()  # cached: no event
            f(x4).block_until_ready()  # new shape: a recompile on the clock
    names = [name for _, name, _ in counter.events]
    assert names.count("jit(f)") == 2
    summary = counter.summary()
    assert summary["functions_after_warmup"] == {"jit(f)": 1}
    f(x5)  # outside the context: not counted
    assert [name for _, name, _ in counter.events].count("jit(f)") == 2


def test_compile_counter_keeps_every_stage_of_a_compile():
    from algoperf_reinit.runner.compilations import COMPILE_STAGE_EVENTS

    def g(x):
        return x - 1

    with CompileCounter() as counter:
        jax.jit(g)(jnp.ones(7)).block_until_ready()
    mine = [(event, name) for event, name, _ in counter.stages if name in ("g", "jit_g", "jit(g)")]
    assert {event for event, _ in mine} == set(COMPILE_STAGE_EVENTS)
    assert ("/jax/core/compile/backend_compile_duration", "jit(g)") in mine
    assert all(seconds >= 0 for _, _, seconds in counter.stages)
    assert [name for _, name, _ in counter.events].count("jit(g)") == 1


def test_metric_logger_grows_columns_and_keeps_exact_floats(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 0.1 + 0.2}, 0)
    logger.append_scalar_metrics({"loss": jnp.float32(1.5), "grad_norm": 3}, 1)
    logger.append_scalar_metrics({"validation/loss": 2.0}, 2, is_eval=True)
    rows = read_csv(tmp_path / "measurements.csv")
    assert [r["global_step"] for r in rows] == ["0", "1", "2"]
    assert float(rows[0]["loss"]) == 0.1 + 0.2 and rows[0]["grad_norm"] == ""
    assert rows[1]["grad_norm"] == "3"
    assert read_csv(tmp_path / "eval_measurements.csv")[0]["validation/loss"] == "2.0"
    assert logger.latest["loss"] == 1.5
    logger.append_scalar_metrics({"loss": __import__("numpy").float64(0.25)}, 4)
    assert read_csv(tmp_path / "measurements.csv")[-1]["loss"] == "0.25"  # not np.float64(...)
    with pytest.raises(TypeError, match="metric 'x' must be a scalar"):
        logger.append_scalar_metrics({"x": jnp.ones(2)}, 3)


def test_progress_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(100, 60.0, stream=stream)
    assert progress.mode == "lines"
    for step in range(1, 101):
        progress.update(step, {"loss": 0.5, "learning_rate": 1e-3, "cycle": 1}, step * 0.1)
    progress.message("event")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 12  # step 1, every 10th step, the message
    assert lines[0].endswith("~? left")  # no rate yet after the first step
    assert lines[-2].startswith("step 100/100 | loss 0.5 lr 0.001 cycle 1 | ")


def test_progress_mode_is_one_of_the_modes():
    with pytest.raises(ValueError, match="progress mode must be one of 'auto', 'bar', 'lines', "
                       "'none', got 'bars'; did you mean 'bar'"):
        Progress(10, 60.0, mode="bars")
    with pytest.raises(TypeError, match=r"progress mode must be one of .* got None of type"):
        Progress(10, 60.0, mode=None)


def test_progress_bar_redraws_one_line():
    stream = io.StringIO()
    progress = Progress(10, 60.0, mode="bar", stream=stream)
    for step in range(1, 11):
        progress.update(step, {}, 0.0)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r[") == 10 and text.count("\n") == 1 and "[########################]" in text


def test_batch_size_checks():
    def sizes(name):
        if name == "digits_variant":
            raise ValueError("unknown")
        return {"digits": 12}[name]

    assert resolve_batch_size(sizes, "digits_variant", "digits", num_devices=4) == 12
    with pytest.raises(ValueError, match="not divisible by the 8 local devices"):
        resolve_batch_size(sizes, "digits", "digits", num_devices=8)


def test_load_submission_by_module_path_and_errors(tmp_path):
    with pytest.raises(ValueError, match=r"submission module 'no_such_pkg\.submission' not found"):
        load_submission("no_such_pkg.submission")
    sub = tmp_path / "submission.py"
    sub.write_text("raise RuntimeError('broken import')\n")
    from algoperf_reinit.runner.faults import SubmissionFault

    with pytest.raises(SubmissionFault, match="import of") as info:
        load_submission(str(sub))
    assert isinstance(info.value.__cause__, RuntimeError)  # the user's error, traceback kept


def test_truncate_csv_runner_alias_and_records(tmp_path):
    from algoperf_reinit import _records
    from algoperf_reinit.runner import metrics

    assert metrics.truncate_csv is _records.truncate_csv and "truncate_csv" in metrics.__all__
    assert metrics.read_csv is _records.read_csv and "read_csv" in metrics.__all__
    path = tmp_path / "measurements.csv"
    logger = MetricLogger(tmp_path)
    for step in range(5):
        logger.append_scalar_metrics({"loss": step / 10}, step)
    assert metrics.truncate_csv(path, lambda row: metrics.row_step(row) < 3) == 2
    assert [r["global_step"] for r in read_csv(path)] == ["0", "1", "2"]
    assert path.read_text().splitlines()[0] == "global_step,loss,preemption_count"
    before = path.read_bytes()
    assert _records.truncate_csv(path, lambda row: True) == 0 and path.read_bytes() == before
    assert _records.truncate_csv(path, lambda row: False) == 3
    assert path.read_text() == "global_step,loss,preemption_count\n"
    assert metrics.truncate_csv(tmp_path / "missing.csv", lambda row: False) == 0
    (tmp_path / "empty.csv").write_text("")
    assert metrics.truncate_csv(tmp_path / "empty.csv", lambda row: False) == 0
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left behind


def test_an_optional_function_that_is_not_callable_is_a_type_error(tmp_path):
    sub = tmp_path / "submission.py"
    sub.write_text("".join(f"def {name}(*args, **kwargs):\n    pass\n\n" for name in (
        "get_batch_size", "init_optimizer_state", "update_params", "data_selection"))
        + "prepare_for_eval = 3\n")
    with pytest.raises(TypeError, match=r"prepare_for_eval must be a function or absent, got 3 "
                                        "of type int"):
        load_submission(str(sub))


def test_progress_labels_the_step_of_old_figures_and_shows_phases():
    stream = io.StringIO()
    progress = Progress(100, 60.0, stream=stream, lines_every=50)
    progress.phase("initialising", 0)
    progress.phase("compiling", 0)
    for step in range(1, 101):
        progress.update(step, {"loss": 0.5, "learning_rate": 1e-3}, step * 0.1,
                        latest_step=step - step % 40)
        if step % 50 == 0:
            progress.phase("evaluating", step)
            progress.latest_eval, progress.latest_eval_step = {"validation/loss": 0.25}, step
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["step 0/100 | initialising\u2026", "step 0/100 | compiling\u2026"]
    assert lines[2].startswith("step 1/100 | loss 0.5 lr 0.001 @ step 0 | ")
    assert lines[3].startswith("step 50/100 | loss 0.5 lr 0.001 @ step 40 | ")
    assert lines[4] == "step 50/100 | evaluating\u2026"  # each phase once in plain lines
    assert lines[5].startswith("step 100/100 | loss 0.5 lr 0.001 @ step 80 | "
                               "validation/loss 0.25 @ step 50 | ")
    assert len(lines) == 6


def test_progress_bar_shows_each_phase_in_place():
    stream = io.StringIO()
    progress = Progress(10, 60.0, mode="bar", stream=stream)
    progress.phase("compiling", 0)
    progress.update(1, {}, 0.0)
    progress.phase("evaluating", 1)
    progress.phase("evaluating", 5)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r[") == 4 and text.count("\n") == 1
    assert "step 0/10 | compiling\u2026\x1b[K" in text and "step 5/10 | evaluating\u2026" in text
