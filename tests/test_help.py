"""The CLI's help agrees with itself and with the registries; ``edgekit --version`` works."""

from __future__ import annotations

import os
import re
from importlib.metadata import version

import pytest

from benchmarks.targets.registry import TARGET_FORMS
from edge.decoders.registry import layout_names, preset_names
from tests.support.cli import run_edgekit

COMMANDS = ("convert", "detect", "eval", "calibrate", "bench")
WIDE = {**os.environ, "COLUMNS": "400"}  # one help row per option


def _help(command: str) -> str:
    proc = run_edgekit(command, "--help", env=WIDE)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _row(text: str, option: str) -> str:
    found = [line for line in text.splitlines() if re.search(rf"\s{re.escape(option)}\s", line)]
    assert found, f"{option} not in help"
    return found[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_lines_and_flags_read_plainly(command: str) -> None:
    text = _help(command)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and re.search(rf"edgekit {command} \[OPTIONS\] [A-Z]+", usage), usage
    assert "<bool>" not in text


def test_version() -> None:
    proc = run_edgekit("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"edgekit {version('edgekit')}"
    assert "<bool>" not in run_edgekit("--help", env=WIDE).stdout


def test_preset_and_layout_choices_come_from_the_registry() -> None:
    presets = " | ".join(preset_names())
    assert presets in _row(_help("convert"), "--preset") and "none" in _row(_help("convert"), "--preset")
    for command in ("detect", "eval"):
        text = _help(command)
        assert presets in _row(text, "--preset")
        layout = _row(text, "--layout")
        assert " | ".join(layout_names()) in layout
        assert layout.count("default") == 1  # one default, shown once


def test_bench_target_threads_and_max_det_defaults_are_stated() -> None:
    bench = _help("bench")
    target = _row(bench, "--target")
    assert TARGET_FORMS in target and "qemu-aarch64[:CPU]" in target and "default: local" in target
    assert "up to the target's cores" in _row(bench, "--threads")
    assert "3 emulated" in _row(bench, "--loops")
    max_det = _row(_help("detect"), "--max-det")
    assert "100 for nanodet-plus" in max_det and "200 for ssd-resnet34" in max_det


def test_calib_num_is_one_spelling_with_the_old_one_hidden() -> None:
    assert "--calib-num" in _help("convert") and "--calib-num" in _help("calibrate")
    assert not re.search(r"\s--num\s", _help("calibrate"))
    proc = run_edgekit(
        "calibrate", "nowhere", "--images", "x", "-o", "t.table", "--num", "2", "--calib-num", "3"
    )
    assert proc.returncode != 0 and "--num is the old spelling of --calib-num" in proc.stderr
    assert "Traceback" not in proc.stderr
