"""``bench --runner app``: the Android demo app's benchmark mode, driven over adb.

The app (``android-demo/``) holds builds bundled with ``edgekit bundle``. For each model the
harness sends one ``am start`` to its ``BenchActivity`` with the bundle name, precision, thread
counts, loops, warm-up, powersave and the sha256 of the host build's ``.bin`` (so a stale
bundle is refused, not measured), waits for the result file the activity writes into the app's
external files directory, pulls it and reads the same JSON ``edgekit-runner bench`` prints.
"""

from __future__ import annotations

import json
import secrets
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.runners import (
    BenchModel,
    BenchncnnRunner,
    Measurement,
    PushFn,
    RunnerFailed,
    TimingPlan,
    measurements_from_runs,
)
from benchmarks.targets.base import Target, TargetError
from edge.checksums import sha256_file

PACKAGE = "io.edgekit.demo"
ACTIVITY = ".BenchActivity"
#: where the app's getExternalFilesDir(null) is on the device (the shell user can read it)
RESULT_DIR = f"/sdcard/Android/data/{PACKAGE}/files"
#: each wait call on the device polls for this long at most (s), so no single adb call runs long
POLL_CALL_S = 10.0
FIX_INSTALL = "build android-demo and install it with adb install (android-demo/README.md)"


def am_start_command(model: BenchModel, plan: TimingPlan, sha256: str, out_name: str) -> list[str]:
    """The exact ``am start`` argv that runs the app's benchmark mode for one model."""
    return [
        "am", "start", "-S", "-W",
        "-n", f"{PACKAGE}/{ACTIVITY}",
        "--es", "build", model.build,
        "--es", "precision", model.precision,
        "--es", "threads", ",".join(map(str, plan.threads)),
        "--ei", "loops", str(plan.loops),
        "--ei", "warmup", str(plan.warmup),
        "--ei", "powersave", str(plan.powersave),
        "--es", "sha256", sha256,
        "--es", "out", out_name,
    ]  # fmt: skip


class AppRunner:
    """The demo app's BenchActivity: the native core inside the app, on the bundled build."""

    kind = "app"
    note = (
        "runner app: the edgekit demo app's benchmark mode (native core inside the app, "
        "bundled builds; the host build's .bin sha256 must match the bundle's)"
    )

    def install(self, target: Target) -> str:
        from benchmarks.targets.adb import AdbTarget

        if not isinstance(target, AdbTarget):
            raise TargetError(
                f"--runner app needs an adb target (the app runs on Android), not {target.name}"
            )
        found = target.run(["pm", "path", PACKAGE], timeout=60)
        if found.returncode != 0 or "package:" not in found.stdout:
            raise TargetError(
                f"the edgekit demo app ({PACKAGE}) is not installed on {target.name}: {FIX_INSTALL}"
            )
        return PACKAGE

    def probe(self, target: Target, installed: str, timeout: float) -> dict[str, Any]:
        """The device described from its shell (/proc/cpuinfo, governor, uname), as for benchncnn."""
        info = BenchncnnRunner(Path(installed)).probe(target, installed, timeout)
        return {**info, "ncnn_version": "as built into the app", "runner": "app"}

    def measure(
        self, target: Target, installed: str, model: BenchModel, push: PushFn, plan: TimingPlan
    ) -> list[Measurement]:
        out_name = f"bench-{secrets.token_hex(6)}.json"
        remote = f"{RESULT_DIR}/{out_name}"
        started = target.run(am_start_command(model, plan, sha256_file(model.bin), out_name), timeout=60)
        said = (started.stdout + "\n" + started.stderr).strip()
        if started.returncode != 0 or "Error" in said:
            raise RunnerFailed(f"am start failed: {said.splitlines()[-1] if said else started.returncode}")
        self._wait(target, remote, plan.timeout)
        with tempfile.TemporaryDirectory(prefix="edgekit-app-") as tmp:
            local = target.pull(remote, Path(tmp) / out_name)
            text = local.read_text(encoding="utf-8", errors="replace")
        target.run(["rm", "-f", remote], timeout=60)
        try:
            data = json.loads(text.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise RunnerFailed(f"the app wrote an unreadable result: {text.strip()[:200]!r}") from None
        if not isinstance(data, dict) or "runs" not in data:
            message = data.get("message") if isinstance(data, dict) else None
            raise RunnerFailed(f"the app's benchmark failed: {message or text.strip()[:200]}")
        return measurements_from_runs(data["runs"])

    @staticmethod
    def _wait(target: Target, remote: str, timeout: float) -> None:
        """Poll on the device until ``remote`` exists (each call polls at most POLL_CALL_S)."""
        steps = int(POLL_CALL_S / 0.2)
        script = (
            f"i=0; while [ $i -lt {steps} ]; do [ -f {shlex.quote(remote)} ] && exit 0; "
            "sleep 0.2; i=$((i+1)); done; exit 1"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if target.run(["sh", "-c", script], timeout=POLL_CALL_S + 30).returncode == 0:
                return
        raise RunnerFailed(f"the app wrote no result within {timeout:.0f} s ({remote})")
