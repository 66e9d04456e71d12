"""The full attack on every ``edgekit`` command: hostile inputs, signals, races (issue 14).

Usage: python -m benchmarks.published.attack [--profile full|sample] [--seed 0] [--workers 2]
        [--only CLASS,...] [--results benchmarks/published/attack_results.json]
Prints a table (cases per class, crashes, internal errors, clean errors, successes, files lost,
leftovers), then every failing case with its command and detail; writes the results as JSON.
Cases come from the seeded generators in ``tests/attack`` (shared with ``tests/test_attack_sample.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

from benchmarks.published.assets import CHECKOUT

RESULTS = Path(__file__).with_name("attack_results.json")


def _kind(detail: str) -> str:
    """A failure's message without the parts that vary by case (numbers, paths, quoted values)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|/\S+|\d+(\.\d+)?", "_", detail.splitlines()[0] if detail else "")
    return text[:90]


def _group(rows: list) -> dict:
    """Rows grouped by (class, verdict, kind of message, kind of side effect), biggest group first."""
    groups: dict = {}
    for r in rows:
        side = ("lost" if r.lost else "") + ("leftovers" if r.leftovers else "")
        groups.setdefault((r.cls, r.verdict, _kind(r.detail), side), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("full", "sample"), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated classes to run (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--show", type=int, default=60, help="failing cases to print")
    parser.add_argument("--all", type=Path, help="also write every case's result to this JSON-lines file")
    args = parser.parse_args()
    sys.path.insert(0, str(CHECKOUT))  # tests/attack lives in the checkout, not in the wheel
    from tests.attack import suite

    if args.only:
        wanted = set(args.only.split(","))
        make = suite.make_cases
        suite.make_cases = lambda *a: [c for c in make(*a) if c.cls in wanted]  # type: ignore[assignment]
    report = suite.attack(args.profile, args.seed, args.workers)
    print()
    print(
        f"edgekit attack, profile {args.profile}, seed {args.seed}: {len(report.results)} cases in "
        f"{report.seconds:.0f} s on {os.cpu_count()} cores ({args.workers} workers)"
    )
    print(report.table())
    if report.fixtures_damaged:
        print("shared fixtures damaged:", ", ".join(report.fixtures_damaged))
    failures = report.failures()
    accepted = [r for r in report.results if r.verdict in ("accepted", "unclear")]
    for title, rows in (("failing cases", failures), ("nonsense accepted / unclear errors", accepted)):
        groups = _group(rows)
        if groups:
            print(f"\n{title}: {len(rows)} cases, {len(groups)} kinds (first {min(len(groups), args.show)}):")
        for key, members in list(groups.items())[: args.show]:
            r = members[0]
            extra = f" lost={r.lost}" if r.lost else ""
            extra += f" leftovers={r.leftovers[:3]}" if r.leftovers else ""
            print(f"  {len(members):5d} x [{key[0]}/{key[1]}] e.g. {r.name!r}: {r.detail[:240]}{extra}")
            print(f"          edgekit {' '.join(r.argv)[:300]}")
    payload = {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.published.attack " + " ".join(sys.argv[1:]),
        "profile": args.profile,
        "seed": args.seed,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "seconds": round(report.seconds, 1),
        "table": report.rows(),
        "fixtures_damaged": report.fixtures_damaged,
        "failures": [asdict(r) for r in failures],
        "accepted_or_unclear": [asdict(r) for r in accepted],
    }
    args.results.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if args.all:
        args.all.write_text("".join(json.dumps(asdict(r), default=str) + "\n" for r in report.results))
    print(f"\nresults: {args.results}")


if __name__ == "__main__":
    main()
