"""Hostile paths for every input and output of every command.

Every path stays inside the case's scratch directory (cwd is ``ws/user``; ``..`` reaches ``ws``
only), except the kernel's ``/proc`` for unwritable and special paths, so ``--force`` on a path
can never reach anything outside the attack.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.attack.case import QUICK_BENCH, Case

LONG = "n" * 250  # fits a name alone, not with a staging prefix and suffix
#: (label, path) as an output; the user tree holds notes.txt, model.onnx, images/, data.json, build/
OUTPUTS = [
    ("traversal", "../user/out"),
    ("traversal-up", "images/../../x"),
    ("too-long-name", "x" * 300),
    ("long-name+staging", LONG),
    ("too-long-path", "/".join(["d" * 200] * 22)),
    ("non-utf8", os.fsdecode(b"out\xff\xfe")),
    ("non-utf8-dir", os.fsdecode(b"\xc3\x28/out")),
    ("unwritable-proc", "/proc/self/edgekit-out"),
    ("under-a-file", "notes.txt/sub"),
    ("existing-file", "notes.txt"),
    ("existing-dir-of-images", "images"),
    ("cwd", "."),
    ("cwd-slash", "./"),
    ("input-model", "model.onnx"),
    ("user-build", "build"),
    ("user-image", "images/a.jpg"),
    ("empty", ""),
    ("dash", "-"),
    ("space", " "),
    ("newline", "out\nx"),
    ("tilde", "~"),
    ("glob", "*"),
    ("option-like", "--force"),
    ("symlink-to-user-dir", "link-images"),
    ("dangling-symlink", "dangling"),
    ("symlink-loop", "loop"),
    ("parent-of-cwd", ".."),
]
#: (label, path) as an input
INPUTS = [
    ("missing", "nope.onnx"),
    ("directory", "images"),
    ("empty-file", "{empty_img}"),
    ("text-as-image", "{text_img}"),
    ("non-utf8", os.fsdecode(b"in\xff.jpg")),
    ("too-long", "x" * 300),
    ("proc-file", "/proc/self/status"),
    ("fifo", "fifo"),
    ("symlink-loop", "loop"),
    ("notes-as-input", "notes.txt"),
    ("sparse-huge", "huge.bin"),
    ("empty", ""),
]
#: how each command is called; OUT / IN are replaced by the hostile path
CALLS = {
    "convert-out": [
        "convert",
        "model.onnx",
        "-o",
        "OUT",
        "--preset",
        "none",
        "--no-fp16",
        "--verify-num",
        "1",
    ],
    "detect-out": ["detect", "{build}", "images/a.jpg", "-o", "OUT"],
    "calibrate-out": ["calibrate", "{build}", "--images", "{calib}", "-o", "OUT", "--calib-num", "1"],
    "bench-csv": ["bench", "{build}", *QUICK_BENCH, "--precision", "fp32", "--csv", "OUT"],
    "bench-plot": ["bench", "{build}", *QUICK_BENCH, "--precision", "fp32", "--plot", "OUT"],
    "zoo-out": ["zoo", "build", "ssd-resnet34-1200", "--input-size", "0", "-o", "OUT"],
    "convert-in": ["convert", "IN", "-o", "out", "--preset", "none", "--no-fp16"],
    "detect-build": ["detect", "IN", "images/a.jpg", "-o", "out"],
    "detect-in": ["detect", "{build}", "IN", "-o", "out"],
    "eval-build": ["eval", "IN", "--coco", "{coco}", "--images", "{coco_images}", "--limit", "1"],
    "eval-coco": ["eval", "{build}", "--coco", "IN", "--images", "{coco_images}", "--limit", "1"],
    "eval-images": ["eval", "{build}", "--coco", "{coco}", "--images", "IN", "--limit", "1"],
    "calibrate-images": ["calibrate", "{build}", "--images", "IN", "-o", "t.table"],
    "calibrate-build": ["calibrate", "IN", "--images", "{calib}", "-o", "t.table"],
    "bench-build": ["bench", "IN", *QUICK_BENCH],
}
#: input == output and other self-destructive calls
SELF = [
    ("detect images -o images --force", ["detect", "build", "images", "-o", "images", "--force"]),
    ("detect images -o . --force", ["detect", "build", "images/a.jpg", "-o", ".", "--force"]),
    (
        "convert model -o . --force",
        ["convert", "model.onnx", "-o", ".", "--force", "--preset", "none", "--no-fp16"],
    ),
    (
        "convert -o dir-of-model --force",
        ["convert", "../user/model.onnx", "-o", "../user", "--force", "--preset", "none"],
    ),
    (
        "convert -o build --force (user build)",
        ["convert", "model.onnx", "-o", "build", "--force", "--preset", "none", "--no-fp16"],
    ),
    (
        "convert -o images --force",
        ["convert", "model.onnx", "-o", "images", "--force", "--preset", "none", "--no-fp16"],
    ),
    (
        "convert -o notes.txt --force",
        ["convert", "model.onnx", "-o", "notes.txt", "--force", "--preset", "none", "--no-fp16"],
    ),
    (
        "convert -o model.onnx --force",
        ["convert", "model.onnx", "-o", "model.onnx", "--force", "--preset", "none", "--no-fp16"],
    ),
    (
        "calibrate -o build/model.fp32.bin --force",
        ["calibrate", "build", "--images", "images", "-o", "build/model.fp32.bin", "--force"],
    ),
    (
        "calibrate -o build/manifest.json --force",
        ["calibrate", "build", "--images", "images", "-o", "build/manifest.json", "--force"],
    ),
    (
        "calibrate --images build -o images/a.jpg --force",
        ["calibrate", "build", "--images", "images", "-o", "images/a.jpg", "--force"],
    ),
    (
        "bench --csv build/manifest.json --force",
        ["bench", "build", *QUICK_BENCH, "--csv", "build/manifest.json", "--force"],
    ),
    (
        "bench --plot images/a.jpg --force",
        ["bench", "build", *QUICK_BENCH, "--plot", "images/a.jpg", "--force"],
    ),
    (
        "bench --csv notes.txt --force",
        ["bench", "build", *QUICK_BENCH, "--csv", "notes.txt", "--force"],
    ),
    (
        "zoo -o model.onnx --force",
        ["zoo", "build", "ssd-resnet34-1200", "--input-size", "0", "-o", "model.onnx", "--force"],
    ),
    ("detect build -o build --force", ["detect", "build", "images", "-o", "build", "--force"]),
    (
        "convert -o .. --force",
        ["convert", "model.onnx", "-o", "..", "--force", "--preset", "none", "--no-fp16"],
    ),
    ("detect -o images/a.jpg --force", ["detect", "build", "images", "-o", "images/a.jpg", "--force"]),
]


def prepare_specials(ws: Path) -> None:
    """Symlinks, a FIFO and a sparse 64 GB file beside the user tree (not part of it)."""
    user = ws / "user"
    os.symlink("images", user / "link-images")
    os.symlink("nowhere/at/all", user / "dangling")
    os.symlink("loop", user / "loop")
    os.mkfifo(user / "fifo")
    with open(user / "huge.bin", "wb") as handle:
        handle.truncate(64 << 30)


def _cost(argv: list[str]) -> bool:
    return argv[0] in ("convert", "zoo")


#: zoo writes an 80 MB model (~6 s) before an accepted path is used: only these paths for it
ZOO_LABELS = {
    "existing-file",
    "input-model",
    "cwd",
    "unwritable-proc",
    "non-utf8",
    "too-long-name",
    "under-a-file",
}
#: calls whose output is a file: with --force, replacing an existing user file there is what was asked
FILE_OUTPUTS = ("calibrate-out", "bench-csv", "bench-plot", "zoo-out")
#: user files a file output may replace with --force (never an input of the same call)
REPLACEABLE = {"notes.txt", "images/a.jpg", "model.onnx"}


def generate(rng: random.Random, sample: int | None = None) -> list[Case]:
    """Every output path x output call, every input path x input call, both with and without --force."""
    cases = []
    for call, template in CALLS.items():
        hostile = OUTPUTS if "OUT" in template else INPUTS
        slot = "OUT" if "OUT" in template else "IN"
        for label, path in hostile:
            if call == "zoo-out" and label not in ZOO_LABELS:
                continue
            for force in (False, True):
                if force and slot == "IN":
                    continue
                argv = [path if a == slot else a for a in template] + (["--force"] if force else [])
                timeout = 30 if label == "fifo" else 90
                replace = [path] if force and call in FILE_OUTPUTS and path in REPLACEABLE else []
                if (
                    force and call == "convert-out" and path == "build"
                ):  # --force may replace an edgekit build
                    replace = ["build/"]
                cases.append(
                    Case(
                        "paths",
                        f"{call} {label}{' --force' if force else ''}",
                        argv,
                        tree="build",
                        prepare=prepare_specials,
                        timeout=timeout,
                        expensive=_cost(argv),
                        params={"may_replace": replace},
                    )
                )
    for label, argv in SELF:
        replace = (
            [a for a in argv[argv.index("--csv") + 1 :][:1] if a == "notes.txt"] if "--csv" in argv else []
        )
        replace += ["images/a.jpg"] if "--plot" in argv else []
        replace += ["build/"] if argv[0] == "convert" and argv[argv.index("-o") + 1] == "build" else []
        replace += (
            ["model.onnx"] if argv[0] == "zoo" else []
        )  # zoo's input is no user file: -o FILE --force as asked
        cases.append(
            Case(
                "paths",
                label,
                argv,
                tree="build",
                prepare=prepare_specials,
                timeout=120,
                expensive=_cost(argv),
                params={"may_replace": replace},
            )
        )
    if sample is not None:
        cases = rng.sample(cases, min(sample, len(cases)))
    return cases
