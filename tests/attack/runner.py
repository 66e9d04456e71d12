"""Run attack cases in forked workers and judge each: verdict, lost user files, leftovers.

The server process imports everything once (:func:`tests.attack.server.preload`), makes the
fixtures in a child, then forks ``workers`` workers that take cases from a shared counter (a
locked file) and run each in a forked child inside a fresh copy of a user tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.attack import server
from tests.attack.case import Case, Result, judge
from tests.attack.fixtures import check_tree, digest_tree, junk

#: the adb client starts a system-wide adb server that outlives it by design (and logs in TMPDIR)
ADB_SERVER = "adb -L tcp:"
ADB_LOG = re.compile(r"^adb\.\d+\.log$")


class Attack:
    """The state every runner needs: scratch root, fixture placeholders, pristine user trees."""

    def __init__(self, root: Path, places: dict[str, str]) -> None:
        self.root = root
        self.places = places
        self.trees = {p.name: digest_tree(p) for p in (root / "pristine").iterdir()}
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
        self.base_env.update({"MPLBACKEND": "Agg", "CI": "", "NO_COLOR": "1"})

    def argv(self, case: Case, extra: dict[str, str] | None = None) -> list[str]:
        """``case.argv`` with placeholders filled in."""
        names = {**self.places, **(extra or {})}
        out = []
        for arg in case.argv:
            for key, value in names.items():
                arg = arg.replace("{" + key + "}", value)
            out.append(arg)
        return out

    def workspace(self, worker: int, index: int, tree: str) -> Path:
        """A fresh case directory: ``user/`` (a copy of the user tree) and ``tmp/``."""
        ws = self.root / "work" / f"w{worker}" / f"c{index}"
        if ws.exists():
            shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir(parents=True)
        shutil.copytree(self.root / "pristine" / tree, ws / "user", symlinks=True)
        (ws / "tmp").mkdir()
        return ws

    def env(self, case: Case, ws: Path) -> dict[str, str]:
        env = {**self.base_env, "TMPDIR": str(ws / "tmp"), "HOME": str(ws / "home")}
        env.update({k: self.fill(v) for k, v in case.env.items()})
        return env

    def fill(self, text: str) -> str:
        """``text`` with fixture placeholders filled in."""
        for key, value in self.places.items():
            text = text.replace("{" + key + "}", value)
        return text

    def aftermath(self, case: Case, ws: Path, result: Result) -> None:
        """Lost user files, leftover files and processes; then the workspace goes."""
        allowed = tuple(case.params.get("may_replace", []))  # files, or directories as "NAME/"
        damage = check_tree(ws / "user", self.trees[case.tree])
        result.lost = [x for x in damage if not _replaceable(x, allowed)]
        expected = set(self.trees[case.tree])
        tmp = sorted(p.name for p in (ws / "tmp").iterdir()) if (ws / "tmp").is_dir() else []
        leftovers = ["user/" + j for j in junk(ws / "user", expected)]
        leftovers += ["tmp/" + name for name in tmp if not ADB_LOG.match(name)]
        leftovers += [f"shell injection ran: {p}" for p in ws.rglob("PWNED")]
        stray = [o for o in server.orphans() if not o.command.startswith(ADB_SERVER)]
        if stray:
            time.sleep(0.5)  # a child told to stop may need a moment
            stray = [o for o in server.orphans() if not o.command.startswith(ADB_SERVER)]
        leftovers += [f"process {o.pid}: {o.command}" for o in stray]
        if result.verdict != "timeout":  # the harness killed it: its junk is ours
            result.leftovers = leftovers
        server.reap_orphans(keep=ADB_SERVER)
        shutil.rmtree(ws, ignore_errors=True)


def _replaceable(damage: str, allowed: tuple[str, ...]) -> bool:
    """A damaged user file the case asked to replace (an explicit output file, or an old build with --force)."""
    name = damage.rsplit(" (", 1)[0]
    return any(name == a or (a.endswith("/") and name.startswith(a)) for a in allowed)


def run_cli(attack: Attack, case: Case, ws: Path) -> Result:
    """The plain case: one CLI call in the user tree."""
    argv = attack.argv(case, {"ws": str(ws)})
    prepare = (lambda: case.prepare(ws)) if case.prepare else None
    out = server.run(argv, ws / "user", attack.env(case, ws), case.timeout, prepare, logs=ws)
    verdict, one_line, detail = judge(case, out.code, out.signal, out.timed_out, out.stdout, out.stderr)
    return Result(
        case.cls, case.name, verdict, out.code, out.signal, out.seconds, one_line, detail=detail, argv=argv
    )


def run_case(attack: Attack, case: Case, worker: int, index: int) -> Result:
    """Run one case with its runner and judge its side effects."""
    from tests.attack import races

    ws = attack.workspace(worker, index, case.tree)
    runners = {
        "cli": run_cli,
        "signal": races.run_signal,
        "concurrent": races.run_concurrent,
        "reader": races.run_reader,
    }
    try:
        result = runners[case.runner](attack, case, ws)
    except Exception as exc:  # the harness, not edgekit
        result = Result(case.cls, case.name, "harness", detail=f"{type(exc).__name__}: {exc}")
    attack.aftermath(case, ws, result)
    return result


def _next_index(counter: Path) -> int:
    with open(counter, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        value = int(handle.read() or 0)
        handle.seek(0)
        handle.write(str(value + 1))
        handle.truncate()
        return value


def _worker(attack: Attack, cases: list[Case], worker: int, counter: Path, results: Path) -> None:
    server.become_subreaper()
    with open(results, "a") as sink:
        while (index := _next_index(counter)) < len(cases):
            started = time.monotonic()
            result = run_case(attack, cases[index], worker, index)
            result.seconds = time.monotonic() - started  # the whole case: setup, run(s), checks
            sink.write(json.dumps({"index": index, **asdict(result)}) + "\n")
            sink.flush()
    server.reap_orphans()  # the adb server our cases started, too


def run_all(attack: Attack, cases: list[Case], workers: int = 2, progress: bool = True) -> list[Result]:
    """Run every case in ``workers`` forked workers; results in case order."""
    run_dir = attack.root / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    counter = run_dir / "counter"
    counter.write_text("0")
    pids = []
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _worker(attack, cases, w, counter, run_dir / f"results-{w}.jsonl")
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    start = time.monotonic()
    remaining = set(pids)
    try:
        while remaining:
            time.sleep(2)
            remaining = {p for p in remaining if os.waitpid(p, os.WNOHANG)[0] == 0}
            if progress:
                done = min(int(counter.read_text() or 0), len(cases))
                print(f"  attack: {done}/{len(cases)} started, {time.monotonic() - start:.0f} s", flush=True)
    except BaseException:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        server.reap_orphans()
    rows: dict[int, dict[str, Any]] = {}
    for path in run_dir.glob("results-*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            rows[row.pop("index")] = row
    return [Result(**rows[i]) if i in rows else _lost_case(cases[i]) for i in range(len(cases))]


def _lost_case(case: Case) -> Result:
    return Result(case.cls, case.name, "harness", detail="no result (a worker died)")
