"""Absurd option values for every command the CLI registers (new commands are found by introspection).

Each command has a cheap valid base call; a case swaps in one, two or three absurd values. Values
come from the option's click type (ints, floats, strings, paths, choices) plus hand-written
nonsense for options whose meaning we know (thresholds, shapes, targets, precisions).
"""

from __future__ import annotations

import random
from pathlib import Path, PurePath
from typing import Any, get_args

from tests.attack.case import Case

#: cheap valid calls per command; options are appended or replaced
BASES: dict[str, list[str]] = {
    "convert": ["convert", "{tiny_onnx}", "-o", "out", "--preset", "none", "--no-fp16", "--verify-num", "1"],
    "detect": ["detect", "{build}", "{img}", "-o", "out"],
    "eval": ["eval", "{build}", "--coco", "{coco}", "--images", "{coco_images}", "--limit", "1"],
    "calibrate": ["calibrate", "{build}", "--images", "{calib}", "-o", "t.table", "--calib-num", "1"],
    "bench": ["bench", "{build}", "--loops", "1", "--warmup", "0", "--threads", "1", "--precision", "fp32"],
    "zoo": ["zoo", "build", "ssd-resnet34-1200", "-o", "z.onnx"],
    # one compile job: an absurd value that is accepted compiles ncnn (killed at the timeout), never in parallel
    "native": ["native", "build", "--jobs", "1"],
    # an app directory that does not exist: bundle never writes into the checkout's android-demo/
    "bundle": ["bundle", "{build}", "--app", "app"],
}
#: per-command weight of random combinations (convert and zoo do real work when they accept)
COMBO_WEIGHT = {"convert": 1, "zoo": 0.2, "calibrate": 1, "eval": 3, "detect": 6, "bench": 2}
#: never generated: a qemu target builds an emulated board (minutes, network); huge loop counts are
#: legitimate requests for long runs
EXCLUDED_VALUES = ("qemu",)

INTS = [
    "-1",
    "0",
    "-2147483649",
    "2147483648",
    "99999999999999999999",
    "1e3",
    "nan",
    "",
    "abc",
    "0x10",
    " 1",
    "１",
    "-0",
]
FLOATS = ["-1", "nan", "inf", "-inf", "1e309", "-1e309", "5", "1e-320", "abc", "", "1,5", "0x1p3"]
STRINGS = [
    "",
    " ",
    "\n",
    "-",
    "x" * 5000,
    "../../x",
    "a,b,,c",
    ",",
    "\udcff\udcfe",
    "☃",
    "%s%n",
    "$(touch PWNED)",
    ";touch PWNED",
    "`touch PWNED`",
]
#: paths as option values: inside the case's user tree (never a shared fixture: it could be written)
PATHS = [
    "",
    "/nonexistent/x",
    "images/a.jpg",
    "images",
    ".",
    "notes.txt",
    "/proc/self/nope",
    "model.onnx",
    "\udcff",
]

#: nonsense for options whose meaning is known: (values, must every one be refused?)
KNOWN: dict[str, tuple[list[str], bool]] = {
    "--score": (["-1", "nan", "inf", "2", "1.0000001", "-0.5", "-inf", "1e309"], True),
    "--nms": (["5", "-1", "nan", "inf", "1.5", "-0.1"], True),
    "--max-det": (["0", "-1", "-2147483649", "2147483648", "99999999999999999999"], True),
    "--size": (["0", "-1", "1", "3", "100000", "2147483648", "-32"], True),
    "--limit": (["0", "-1", "99999999999999999999"], True),
    "--calib-num": (["0", "-1", "99999999999999999999"], True),
    "--verify-num": (["-1", "-5", "99999999999999999999"], True),
    "--auto-keep-float": (["1", "-0.1", "nan", "inf", "2"], True),
    "--max-keep-float": (["-1", "-99"], True),
    "--loops": (["0", "-1", "-100", "99999999999999999999"], True),
    "--warmup": (["-1", "-100", "99999999999999999999"], True),
    "--input-size": (["0", "-1", "100000", "399", "2147483648"], True),
    "--seed": (["-1", "99999999999999999999", "-99999999999999999999"], False),
    "--threads": (["0", "-1", "100000", "2147483647", "4294967297", "1,,2", "1,a", "1,", ",", "-2,1"], True),
    "--input-shape": (
        [
            "1,,3,32,32",
            "1,3,0,0",
            "1,3,-1,32",
            "1,3,99999999999,99999999999",
            "1,3,65536,65536",
            "1,3",
            "a,b,c,d",
            "1,3,32,32,1",
            "0,3,32,32",
            "1x3x32x32",
            "1,3,2147483648,1",
            "1,4,32,32",
            "-1,3,32,32",
            "1,3,32,32,",
            "1,3,1e3,32",
            "1,3,46341,46341",
        ],
        True,
    ),
    "--shape": (
        [
            "0,0,0",
            "3,32",
            "3,-1,32",
            "3,99999,99999",
            "a,b,c",
            "3,32,32",
            "1,3,320,320",
            "3,,32,32",
            "-3,320,320",
        ],
        True,
    ),
    "--precision": (["", "fp64", "int4", "FP32", "int8", ",", "fp16,", "fp32,,fp16", "fp32;fp16"], True),
    "--preset": (["", "NANODET-PLUS", "../x", "auto ", "none,nanodet-plus", "bogus", "nanodet"], True),
    "--layout": (["", "bogus", "auto,auto", "NANODET-SINGLE"], True),
    "--method": (["", "KL", "bogus", "kl;rm", "kl "], True),
    "--outputs": (["", ",", "nonexistent", "out0,,out1", "out0,out0", "in0"], True),
    "--target": (
        [
            "ssh://u@host:0",
            "ssh://",
            "ssh://@",
            "ssh://u@host:99999",
            "ssh://u@host:abc",
            "ssh://u@127.0.0.1:1",
            "ssh://-oProxyCommand=touch PWNED",
            "ssh://u@-oProxyCommand=touch%20PWNED",
            "adb://;touch PWNED",
            "adb://-s",
            "local:extra",
            "bogus://x",
            "LOCAL",
            "",
            "ssh://u@[::1",
            "adb://" + "x" * 300,
        ],
        True,
    ),
    "--weights": (["", "nonexistent.onnx", "{img}", "{tiny_onnx}", "generated "], False),
    "--keep-float": (["", "nonexistent_layer", ",", "x" * 3000], False),
    "--runner": (["/nonexistent/runner", "{img}", "/bin/false", "/bin/true", "{build}"], True),
    "--mean": (["nan,nan,nan", "1,2", "1e309,1,1", "a,b,c", "", "1,,2,3"], False),
    "--norm": (["0,0,0", "nan,1,1", "-inf,1,1", "1,2", "a,b,c", ""], False),
    "--std": (["0,0,0", "nan,1,1", "-1,-1,-1", "1,2", "a,b,c", ""], False),
    "--cores": (["0", "-1", "abc", "99999", "0-", "1,,2"], True),
    "--arch": (["", "bogus", "HOST ", "aarch64;touch PWNED", "x86", "../x", "arm64-v8a,host"], True),
    # never 0 or a huge count: an accepted one would compile with that many jobs on a shared machine
    "--jobs": (["-1", "abc", "", "-99999999999999999999", "1.5"], True),
}


def _click_tree() -> dict[str, Any]:
    """Every leaf command by its path (``["native", "build"]`` -> command), from the live CLI."""
    import typer.main

    from edge import cli

    cli._register_commands()
    root = typer.main.get_command(cli.app)
    leaves: dict[str, Any] = {}

    def walk(group: Any, path: list[str]) -> None:
        for name, cmd in getattr(group, "commands", {}).items():
            if getattr(cmd, "commands", None):
                walk(cmd, [*path, name])
            else:
                leaves[" ".join([*path, name])] = cmd

    walk(root, [])
    return leaves


def _base(path: str, cmd: Any) -> list[str]:
    """A valid-looking call of a command we have no hand-written base for."""
    if path in BASES:
        return list(BASES[path])
    argv = path.split()
    for param in cmd.params:
        if param.param_type_name == "argument" and param.required:
            name = param.name or ""
            if "build" in name:
                argv.append("{build}")
            elif "model" in name or "onnx" in name:
                argv.append("{tiny_onnx}")
            elif "input" in name or "image" in name:
                argv.append("{img}")
            elif "action" in name:
                argv.append("list")
            else:
                argv.append("x")
        elif param.param_type_name == "option" and param.required:
            argv += [param.opts[0], "out" if "out" in (param.name or "") else "{build}"]
    return argv


def _values(param: Any) -> tuple[list[str], bool]:
    """Absurd values for one option, and whether every one must be refused."""
    for opt in param.opts:
        if opt in KNOWN:
            return KNOWN[opt]
    kind = _annotation(param)
    if kind is int:
        return INTS, False
    if kind is float:
        return FLOATS, False
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return PATHS, False
    return STRINGS, False


def _annotation(param: Any) -> Any:
    """The option's Python type, with ``X | None`` and ``list[X]`` unwrapped."""
    descriptor = getattr(param, "type_descriptor", None)
    kind = getattr(descriptor, "annotation", None)
    if kind is None:
        return {"integer": int, "float": float, "path": Path}.get(
            getattr(getattr(param, "type", None), "name", ""), str
        )
    for _ in range(3):
        args = [a for a in get_args(kind) if a is not type(None)]
        if not args:
            break
        kind = args[0]
    return kind


def _options(cmd: Any) -> list[tuple[str, list[str], bool]]:
    found = []
    for param in cmd.params:
        if param.param_type_name != "option" or getattr(param, "is_flag", False) or param.hidden:
            continue
        if param.name in ("help",):
            continue
        values, strict = _values(param)
        values = [v for v in values if not any(x in v for x in EXCLUDED_VALUES)]
        found.append((param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0], values, strict))
    return found


def _apply(base: list[str], option: str, value: str) -> list[str]:
    argv = list(base)
    if option in argv:
        i = argv.index(option)
        argv[i + 1] = value
    else:
        argv += [option, value]
    return argv


def _timeout(path: str) -> float:
    if path.startswith("native"):
        return 20.0  # a compile that starts is a finding already; no need to let it finish
    return 90.0 if _expensive(path) else 30.0


def _expensive(path: str) -> bool:
    return path in ("convert",) or path.startswith(("zoo", "native", "bundle"))


def generate(rng: random.Random, combos: int) -> list[Case]:
    """One case per (command, option, absurd value), then ``combos`` random 2-3 option mixes.

    Cheap commands time out after 30 s (they answer in well under a second); converts after 90 s.
    """
    tree = _click_tree()
    cases = []
    table = {}
    for path, cmd in sorted(tree.items()):
        base = _base(path, cmd)
        options = _options(cmd)
        table[path] = (base, options)
        for option, values, strict in options:
            for value in values:
                cases.append(
                    Case(
                        "options",
                        f"{path} {option} {value[:40]!r}",
                        _apply(base, option, value),
                        expect="error" if strict else "any",
                        timeout=_timeout(path),
                        expensive=_expensive(path),
                    )
                )
    weights = [COMBO_WEIGHT.get(p, 1) for p in table]
    paths = list(table)
    for _ in range(combos):
        path = rng.choices(paths, weights)[0]
        base, options = table[path]
        if len(options) < 2:
            continue
        picked = rng.sample(options, min(len(options), rng.choice((2, 2, 3))))
        argv, names, strict = list(base), [], False
        for option, values, option_strict in picked:
            value = rng.choice(values)
            argv = _apply(argv, option, value)
            names.append(f"{option} {value[:20]!r}")
            strict = strict or option_strict
        cases.append(
            Case(
                "options",
                f"{path} " + " ".join(names),
                argv,
                expect="error" if strict else "any",
                timeout=_timeout(path),
                expensive=_expensive(path),
            )
        )
    return cases
