"""The attack suite's CI sample: a seeded few hundred hostile calls of every command (issue 14).

Runs ``python -m benchmarks.published.attack --profile sample`` in a subprocess (the attack forks
its own server, which must not be pytest) and asserts what the issue demands of every case: no
crash (no exit >= 128, no death by signal), no ``internal error`` or traceback, no hang, no lost
or altered user file, and nothing left behind (staging directories, temp files, processes).
The generators are the full run's (``tests/attack``); only the counts differ.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.assets import REPO_ROOT, require_asset

SEED = 14
COLUMNS = ("crashes", "internal errors", "timeouts", "harness errors", "files lost", "leftovers")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_asset("models/onnx/nanodet-m-0.5x_320.onnx")
    require_asset("data/coco-val2017-subset/instances.json")
    out = tmp_path_factory.mktemp("attack") / "attack.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.published.attack",
            "--profile",
            "sample",
            "--seed",
            str(SEED),
            "--results",
            str(out),
            "--show",
            "0",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def _describe(failures: list[dict]) -> str:
    return "\n".join(
        f"[{f['cls']}/{f['verdict']}] {f['name']}: {f['detail'][:200]} lost={f['lost']} leftovers={f['leftovers'][:2]}"
        f"\n    edgekit {' '.join(f['argv'])[:240]}"
        for f in failures[:40]
    )


def test_sample_covers_every_class(sample: dict) -> None:
    classes = {row["class"] for row in sample["table"]}
    assert {"options", "env", "paths", "onnx", "ncnn", "manifest", "coco", "disk", "signals"} <= classes
    total = next(row for row in sample["table"] if row["class"] == "total")
    assert total["cases"] >= 250


def test_no_crash_internal_error_loss_or_leftover(sample: dict) -> None:
    total = next(row for row in sample["table"] if row["class"] == "total")
    bad = {column: total[column] for column in COLUMNS if total[column]}
    assert not bad and not sample["fixtures_damaged"], f"{bad}\n{_describe(sample['failures'])}"
