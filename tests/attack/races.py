"""Runners for signals and races: kill a convert at a random point, race writers, read during swaps.

A build is *complete* when its ``manifest.json`` parses and every file it lists is there with the
listed sha256; a target must always be absent, complete, or (with ``--force``) the previous build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from tests.attack import server
from tests.attack.case import Case, Result, judge

MANIFEST = "manifest.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listed_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Relative path -> sha256 of every file a manifest lists."""
    files = {}
    for precisions in manifest.get("artifacts", {}).values():
        for artifact in precisions.values():
            for record in artifact.get("files", {}).values():
                files[record["path"]] = record["sha256"]
    return files


def build_state(target: Path, dir_fd: int | None = None) -> str:
    """``absent``, ``complete`` or what is wrong (reads through ``dir_fd`` when given: one directory)."""

    def read(name: str) -> bytes:
        if dir_fd is None:
            return (target / name).read_bytes()
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    if dir_fd is None and not target.exists():
        return "absent"
    try:
        manifest = json.loads(read(MANIFEST))
    except FileNotFoundError:
        return "no manifest"
    except (OSError, ValueError) as exc:
        return f"bad manifest: {exc}"
    files = listed_files(manifest)
    if not files:
        return "manifest lists no files"
    for name, digest in files.items():
        try:
            if _sha(read(name)) != digest:
                return f"mixed: {name} does not match the manifest"
        except OSError:
            return f"incomplete: {name} missing"
    return "complete"


def tree_digest(target: Path) -> str:
    """One digest of every file of a directory (to recognise the previous build)."""
    h = hashlib.sha256()
    for path in sorted(target.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(target)).encode() + _sha(path.read_bytes()).encode())
    return h.hexdigest()


def run_signal(attack: Any, case: Case, ws: Path) -> Result:
    """Start the CLI, send ``params.signal`` after ``params.delay`` s, check the target, run again."""
    p = case.params
    user = ws / "user"
    target = user / p["target"]
    old = None
    if p.get("existing"):
        shutil.copytree(attack.places["build"], target)
        old = tree_digest(target)
    argv = attack.argv(case)
    env = attack.env(case, ws)
    pid = server.spawn(argv, user, env, ws / ".attack-stdout", ws / ".attack-stderr")
    time.sleep(p["delay"])
    with contextlib.suppress(ProcessLookupError):
        if p.get("group"):
            os.killpg(pid, p["signal"])
        else:
            os.kill(pid, p["signal"])
    code, sig, timed_out, seconds = server.wait(pid, case.timeout)
    stdout, stderr = server.read_text(ws / ".attack-stdout"), server.read_text(ws / ".attack-stderr")
    verdict, one_line, detail = judge(case, code, sig, timed_out, stdout, stderr, sent=p["signal"])
    state = build_state(target)
    if old is not None and state == "complete" and tree_digest(target) == old:
        state = "previous build"
    if state not in ("absent", "complete", "previous build"):
        verdict, detail = "crash", f"target {state} after signal {p['signal']} at {p['delay']:.2f} s"
    detail = f"t={p['delay']:.2f}s target {state}; {detail}"
    again = p.get("again")
    if again:
        follow = server.run(attack.argv(Case(case.cls, case.name, again)), user, env, case.timeout, logs=ws)
        if follow.code != 0 or (p["target"] != "none" and build_state(target) != "complete"):
            verdict = "crash" if follow.signal or (follow.code or 0) >= 128 else "unclear"
            detail += f"; the next run failed: exit {follow.code} {follow.stderr.strip()[-300:]}"
    return Result(case.cls, case.name, verdict, code, sig, seconds, one_line, detail=detail, argv=argv)


def run_concurrent(attack: Any, case: Case, ws: Path) -> Result:
    """Start ``params.copies`` identical CLI calls at once; ``params.winners`` says how many may win."""
    p = case.params
    user = ws / "user"
    argv = attack.argv(case)
    env = attack.env(case, ws)
    pids = []
    for i in range(p["copies"]):
        pids.append(server.spawn(argv, user, env, ws / f".attack-out{i}", ws / f".attack-err{i}"))
    verdicts, codes, details = [], [], []
    for i, pid in enumerate(pids):
        code, sig, timed_out, _ = server.wait(pid, case.timeout)
        out_path, err_path = ws / f".attack-out{i}", ws / f".attack-err{i}"
        verdict, _, detail = judge(
            case, code, sig, timed_out, server.read_text(out_path), server.read_text(err_path)
        )
        out_path.unlink(missing_ok=True)
        err_path.unlink(missing_ok=True)
        verdicts.append(verdict)
        codes.append(code)
        details.append(detail)
    bad = [v for v in verdicts if v not in ("success", "clean")]
    wins = verdicts.count("success")
    verdict = bad[0] if bad else "success"
    detail = f"{wins} of {p['copies']} succeeded"
    if p.get("winners") is not None and wins != p["winners"]:
        verdict = "unclear"
        detail += f", expected exactly {p['winners']}"
    if p.get("target"):
        state = build_state(user / p["target"])
        if state != "complete":
            verdict, detail = "unclear", detail + f"; target {state}"
    detail += "; " + " | ".join(sorted(set(d for d in details if d)))[:300]
    return Result(case.cls, case.name, verdict, codes[0], None, 0.0, True, detail=detail, argv=argv)


def _pinned_reader(target: Path, stop: Path, log: Path) -> None:
    """Child: until ``stop`` exists, open the build directory once per round and check it whole."""
    seen: dict[str, int] = {}
    while not stop.exists():
        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            seen["absent"] = seen.get("absent", 0) + 1
            continue
        try:
            state = build_state(target, dir_fd=fd)
        finally:
            os.close(fd)
        key = state if not state.startswith(("mixed", "incomplete")) else "mixed: " + state
        seen[key] = seen.get(key, 0) + 1
    log.write_text(json.dumps(seen))


def run_reader(attack: Any, case: Case, ws: Path) -> Result:
    """``--force`` converts replace a build in turn while a pinned reader and ``detect`` calls read it."""
    p = case.params
    user = ws / "user"
    target = user / p["target"]
    env = attack.env(case, ws)
    shutil.copytree(attack.places["build"], target)
    stop, log = ws / ".attack-stop", ws / ".attack-reader"
    reader = os.fork()
    if reader == 0:
        code = 0
        try:
            _pinned_reader(target, stop, log)
        except BaseException:
            code = 1
        os._exit(code)
    outcomes: list[str] = []
    detects = 0
    writers = [attack.argv(Case(case.cls, case.name, w)) for w in p["writers"]]
    for writer in writers:
        pid = server.spawn(writer, user, env, ws / ".attack-wout", ws / ".attack-werr")
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            read = server.run(attack.argv(Case(case.cls, case.name, p["reader"])), user, env, 60, logs=ws)
            detects += 1
            verdict, _, detail = judge(case, read.code, read.signal, read.timed_out, read.stdout, read.stderr)
            if verdict not in ("success", "clean"):
                outcomes.append(f"reader {verdict}: {detail}")
        err = server.read_text(ws / ".attack-werr").strip()[-200:]
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            outcomes.append(f"writer failed ({status}): {err}")
    stop.write_text("")
    os.waitpid(reader, 0)
    seen = json.loads(log.read_text()) if log.exists() else {"reader died": 1}
    for name in (stop, log, ws / ".attack-wout", ws / ".attack-werr"):
        name.unlink(missing_ok=True)
    # a reader holding the previous build's directory may see its files go as it is removed
    # (incomplete: a clean failure to read); a mix of two builds' files is the failure
    mixed = {k: v for k, v in seen.items() if not k.startswith(("complete", "absent", "mixed: incomplete"))}
    verdict = "success"
    if mixed:
        verdict = "unclear"
        outcomes.append(f"pinned reader saw {mixed}")
    if any(o.startswith("reader crash") for o in outcomes):
        verdict = "crash"
    elif any(o.startswith("reader internal") for o in outcomes):
        verdict = "internal"
    final = build_state(target)
    if final != "complete":
        verdict = "unclear"
        outcomes.append(f"final target {final}")
    detail = f"{detects} detect reads, pinned reads {seen}; " + " | ".join(outcomes)[:400]
    return Result(case.cls, case.name, verdict, 0, None, 0.0, True, detail=detail, argv=writers[0])


def stop_all(pids: list[int]) -> None:
    """Kill what a runner started (used on harness errors)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
