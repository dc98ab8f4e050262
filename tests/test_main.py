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
