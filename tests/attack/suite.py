"""The attack as a whole: seeded case lists (a CI sample, the full set), the run, the table.

``attack(profile, seed)`` makes a scratch root, preloads the CLI, builds the fixtures in a child,
generates the cases, runs them in forked workers and checks that the shared fixtures survived.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.attack import gen_env, gen_json, gen_models, gen_options, gen_paths, gen_races, server
from tests.attack.case import CLASSES, Case, Result
from tests.attack.fixtures import build_fixtures, check_tree, digest_tree
from tests.attack.runner import Attack, run_all

#: how many cases of each kind a profile makes
PROFILES: dict[str, dict[str, Any]] = {
    "sample": {
        "combos": 60,
        "env_per_variable": 1,
        "paths": 30,
        "onnx": 6,
        "ncnn": 12,
        "manifest": 60,
        "coco": 30,
        "signals": {"kill -9": 1, "SIGTERM": 1},
        "video_signals": 1,
        "concurrency": 0,
        "disk": 2,
        "options": 120,
        "cheap": True,
    },
    "full": {
        "combos": 6000,
        "env_per_variable": None,
        "paths": None,
        "onnx": None,
        "ncnn": None,
        "manifest": 1800,
        "coco": 700,
        "signals": {"kill -9": 20, "SIGTERM": 20, "SIGHUP": 6, "SIGINT": 4},
        "video_signals": 6,
        "concurrency": 2,
        "disk": None,
        "options": None,
    },
}


def _take(rng: random.Random, cases: list[Case], count: int | None, cheap: bool = False) -> list[Case]:
    """``count`` of ``cases`` (all when None), only cheap ones when ``cheap``."""
    if cheap:
        cases = [c for c in cases if not c.expensive]
    return cases if count is None or count >= len(cases) else rng.sample(cases, count)


def make_cases(profile: str, seed: int, places: dict[str, str]) -> list[Case]:
    """Every case of ``profile``, deterministic for ``seed``; expensive cases first (they spread over workers)."""
    p = PROFILES[profile]
    rng = random.Random(seed)
    cheap = p.get("cheap", False)
    options = gen_options.generate(rng, 0)
    cases = _take(rng, options, p["options"], cheap)
    combos = gen_options.generate(rng, p["combos"])[len(options) :]
    cases += _take(rng, combos, len(combos) // 2 if cheap else None, cheap)
    cases += _take(rng, gen_env.generate(rng, p["env_per_variable"]), None, cheap)
    cases += _take(rng, gen_paths.generate(rng), p["paths"], cheap)
    cases += _take(rng, gen_models.onnx_cases(rng), p["onnx"])
    cases += _take(rng, gen_models.ncnn_cases(rng), p["ncnn"])
    cases += gen_json.manifest_cases(rng, places, p["manifest"])
    cases += gen_json.coco_cases(rng, places, p["coco"])
    cases += _take(rng, gen_races.disk_cases(), p["disk"], cheap)
    cases += gen_races.signal_cases(rng, p["signals"])
    cases += gen_races.video_signal_cases(rng, p["video_signals"])
    cases += gen_races.concurrency_cases(p["concurrency"])
    order = {"concurrency": 0, "signals": 1}
    cases.sort(key=lambda c: (order.get(c.cls, 2), not c.expensive))
    return cases


@dataclass
class Report:
    """The results and the table the issue asks for."""

    profile: str
    seed: int
    results: list[Result]
    seconds: float
    fixtures_damaged: list[str] = field(default_factory=list)
    preload_failed: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for cls in [*CLASSES, "total"]:
            picked = [r for r in self.results if cls in ("total", r.cls)]
            if not picked:
                continue
            verdicts = Counter(r.verdict for r in picked)
            rows.append(
                {
                    "class": cls,
                    "cases": len(picked),
                    "crashes": verdicts["crash"],
                    "internal errors": verdicts["internal"],
                    "timeouts": verdicts["timeout"],
                    "harness errors": verdicts["harness"],
                    "clean errors": verdicts["clean"],
                    "unclear errors": verdicts["unclear"],
                    "successes": verdicts["success"],
                    "nonsense accepted": verdicts["accepted"],
                    "files lost": sum(1 for r in picked if r.lost)
                    + (len(self.fixtures_damaged) if cls == "total" else 0),
                    "leftovers": sum(1 for r in picked if r.leftovers),
                    "case seconds": round(sum(r.seconds for r in picked)),
                }
            )
        return rows

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.failed()]

    def table(self) -> str:
        rows = self.rows()
        heads = list(rows[0])
        widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in heads]

        def line(values: Any) -> str:
            cells = zip(values, widths, strict=True)
            return "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(cells))

        return "\n".join([line(heads), line("-" * w for w in widths), *(line(r.values()) for r in rows)])


def attack(
    profile: str, seed: int = 0, workers: int = 2, root: Path | None = None, progress: bool = True
) -> Report:
    """Run the ``profile`` attack; the scratch root is removed afterwards unless given."""
    failed = server.preload()
    own = root is None
    root = Path(tempfile.mkdtemp(prefix="edgekit-attack-")) if root is None else root
    try:
        places = server.call(build_fixtures, root)
        before = digest_tree(root / "fixtures")
        cases = make_cases(profile, seed, places)
        if progress:
            print(f"attack ({profile}, seed {seed}): {len(cases)} cases, {workers} workers", flush=True)
        start = time.monotonic()
        results = run_all(Attack(root, places), cases, workers, progress)
        seconds = time.monotonic() - start
        damaged = [f"fixtures/{x}" for x in check_tree(root / "fixtures", before)]
        return Report(profile, seed, results, seconds, damaged, failed)
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
