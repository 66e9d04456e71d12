"""Fuzzing the ncnn model reader with mutated real models.

Every mutated / truncated / garbled .param and .bin must end in ``ModelFormatError`` or a model
that validates; never any other exception. Files that validate are then loaded by ``open_net``
and run by the real ncnn in a subprocess (many per process) to prove they cannot crash it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import ModelFormatError
from edge.ncnn.model import NcnnModel
from edge.ncnn.synth import synthesize_weights
from edge.ncnn.validate import validate_model
from tests.support.assets import REPO_ROOT, require_asset
from tests.support.ncnn_graphs import TINY_TRANSFORMER

FUZZ_SETTINGS = settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Small real models: a prefix of each shared model (real params, real fp16 / int8 / fp32 weights).
SOURCES = {
    "fp16-clsdis": ("models/ncnn/nanodet-plus-m_320-clsdis", 18),
    "int8": ("models/ncnn/nanodet-plus-m_416-int8", 18),
    "legacy-m": ("models/ncnn/nanodet-m_320", 14),
    "pnnx": ("models/ncnn/nanodet-plus-m_416-pnnx", 16),
}
GRAPHS = ("squeezenet_ssd.param", "vision_transformer.param", "mobilenet_yolo.param")
EXTREMES = (
    "0",
    "-1",
    "-233",
    "1",
    "3",
    "65535",
    "2147483647",
    "-2147483648",
    "2147483648",
    "99999999999",
    "1e30",
    "-1.5",
    "nan",
    "inf",
    "0x10",
    "",
    "=",
    ",",
    "1,2",
    "-23300=9",
    "99=1",
)


def _prefix_model(relative: str, count: int) -> NcnnModel:
    folder = require_asset(relative)
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    model.layers = model.layers[:count]
    return model


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str, bytes | None, tuple[int, int, int]]]:
    """(label, param text, bin bytes or None, input CHW) for every seed model."""
    seeds = []
    for label, (relative, count) in SOURCES.items():
        model = _prefix_model(relative, count)
        validate_model(model)
        seeds.append((label, model.param_text(), model.bin_bytes(), (3, 48, 64)))
    bench = require_asset("models/ncnn-benchmark")
    for name in GRAPHS:
        text = (bench / name).read_text()
        seeds.append((name, text, None, _declared_shape(NcnnModel.parse(text))))
    return seeds


def _declared_shape(model: NcnnModel) -> tuple[int, ...]:
    """CxHxW declared by the first Input layer (params 2, 1, 0)."""
    first = model.layers[0]
    return tuple(v for v in (first.get(2, 0), first.get(1, 0), first.get(0, 0)) if v)


# ----------------------------------------------------------------------------- mutators
def _mutate_param(text: str, rnd: random.Random) -> str:
    lines = text.split("\n")
    kind = rnd.randrange(9)
    if kind == 0 and text:  # flip one character
        pos = rnd.randrange(len(text))
        return text[:pos] + chr(rnd.choice([rnd.randrange(32, 127), rnd.randrange(0, 256)])) + text[pos + 1 :]
    if kind == 1:  # truncate
        return text[: rnd.randrange(len(text) + 1)]
    if kind == 2 and len(lines) > 3:  # drop or duplicate a line
        i = rnd.randrange(2, len(lines))
        if rnd.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, lines[i])
        return "\n".join(lines)
    if kind == 3 and len(lines) > 4:  # swap two lines
        i, j = rnd.randrange(2, len(lines)), rnd.randrange(2, len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    i = rnd.randrange(len(lines))
    tokens = lines[i].split()
    if not tokens:
        return text
    if kind == 4:  # swap two tokens
        a, b = rnd.randrange(len(tokens)), rnd.randrange(len(tokens))
        tokens[a], tokens[b] = tokens[b], tokens[a]
    elif kind == 5:  # replace a value with an extreme one
        t = rnd.randrange(len(tokens))
        key, sep, _ = tokens[t].partition("=")
        tokens[t] = f"{key}={rnd.choice(EXTREMES)}" if sep else rnd.choice(EXTREMES)
    elif kind == 6:  # nudge a number
        t = rnd.randrange(len(tokens))
        key, sep, value = tokens[t].partition("=")
        target = value if sep else key
        if target.lstrip("-").isdigit():
            target = str(int(target) + rnd.choice([-2, -1, 1, 2, 7, 1000]))
        tokens[t] = f"{key}={target}" if sep else target
    elif kind == 7:  # insert or delete a token
        if rnd.random() < 0.5 and len(tokens) > 1:
            del tokens[rnd.randrange(len(tokens))]
        else:
            tokens.insert(rnd.randrange(len(tokens) + 1), rnd.choice([*EXTREMES, "5=1", "8=2", "blob"]))
    else:  # rename a blob to another blob of the same line or a new one
        t = rnd.randrange(len(tokens))
        tokens[t] = rnd.choice([*tokens, "ghost"])
    lines[i] = " ".join(tokens)
    return "\n".join(lines)


def _mutate_bin(data: bytes, rnd: random.Random) -> bytes:
    kind = rnd.randrange(5) if len(data) > 8 else 1
    if kind == 0:
        return data[: rnd.randrange(len(data) + 1)]
    if kind == 1:
        return data + bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 3, 4, 8, 1024])))
    out = bytearray(data)
    if kind == 2:
        for _ in range(rnd.randrange(1, 8)):
            out[rnd.randrange(len(out))] = rnd.randrange(256)
        return bytes(out)
    if kind == 3:  # overwrite the first tag or a random aligned word with a known or odd tag
        pos = rnd.randrange(0, len(out) - 4, 4) if rnd.random() < 0.7 else 0
        tag = rnd.choice([0x00000000, 0x01306B47, 0x000D4B38, 0x0002C056, 0xFFFFFFFF, 0x00000001])
        out[pos : pos + 4] = tag.to_bytes(4, "little")
        return bytes(out)
    cut = rnd.randrange(len(out))
    return bytes(out[:cut] + out[cut + rnd.randrange(1, 64) :])


def mutate(
    seed: tuple[str, str, bytes | None, tuple[int, int, int]], rnd: random.Random
) -> tuple[str, bytes | None]:
    _, text, data, _ = seed
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        if data is not None and rnd.random() < 0.35:
            data = _mutate_bin(data, rnd)
        else:
            text = _mutate_param(text, rnd)
    return text, data


def _parse_or_refuse(text: str, data: bytes | None, shape: tuple[int, int, int]) -> NcnnModel | None:
    try:
        model = NcnnModel.parse(text, data)
        return validate_model(model, {name: shape for name in model.input_names()})
    except ModelFormatError as err:
        message = str(err)
        assert message and "\n" not in message
        return None


RUNNER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from edge.errors import ModelFormatError
    from edge.ncnn.net import open_net, run_net
    for i, job in enumerate(json.load(open(sys.argv[1]))):
        print("start", i, job["param"], flush=True)
        try:
            shapes = {name: tuple(job["shape"]) for name in job["inputs"]}
            net = open_net(job["param"], job["bin"], num_threads=1, input_shapes=shapes)
            data = np.random.default_rng(i).uniform(-1, 1, job["shape"]).astype(np.float32)
            run_net(net, {name: data for name in job["inputs"]}, job["outputs"])
            print("ran", i, flush=True)
        except ModelFormatError as err:
            print("refused", i, err, flush=True)
    print("done", flush=True)
    """
)


def _run_in_subprocess(jobs: list[dict], tmp_path: Path) -> list[str]:
    """Load and run every job in one child process; fail with the culprit if ncnn crashes it."""
    manifest = tmp_path / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(manifest)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = proc.stdout.splitlines()
    last = next((line for line in reversed(lines) if line.startswith("start")), "")
    assert proc.returncode == 0 and lines[-1:] == ["done"], (
        f"ncnn crashed (exit {proc.returncode}) on {last}: {proc.stderr[-2000:]}"
    )
    return lines


# ----------------------------------------------------------------------------- properties
@FUZZ_SETTINGS
@given(index=st.integers(0, len(SOURCES) + len(GRAPHS) - 1), seed=st.integers(0, 2**32 - 1))
def test_mutated_models_parse_or_raise_model_format_error(corpus, index, seed):
    text, data = mutate(corpus[index], random.Random(seed))
    _parse_or_refuse(text, data, corpus[index][3])


@settings(FUZZ_SETTINGS, max_examples=300)
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_as_param_never_escape(raw):
    try:
        model = NcnnModel.parse(raw.decode("utf-8", errors="replace"), None)
        validate_model(model)
    except ModelFormatError:
        pass


@pytest.fixture(scope="module")
def full_models() -> list[tuple[str, str, bytes]]:
    root = require_asset("models/ncnn")
    return [
        (folder.name, (folder / "model.param").read_text(), (folder / "model.bin").read_bytes())
        for folder in sorted(root.iterdir())
        if (folder / "model.bin").exists()
    ]


@settings(FUZZ_SETTINGS, max_examples=80)
@given(index=st.integers(0, 6), seed=st.integers(0, 2**32 - 1))
def test_damaged_full_size_bins_are_refused(full_models, index, seed):
    """Any truncation, extension or tag damage of a real .bin is caught (sizes no longer add up)."""
    _, text, data = full_models[index % len(full_models)]
    rnd = random.Random(seed)
    kind = rnd.randrange(3)
    if kind == 0:
        damaged = data[: rnd.randrange(len(data))]
    elif kind == 1:
        damaged = data + bytes(rnd.randrange(1, 9))
    else:  # turn the first weight buffer's fp16 / int8 tag into another storage
        tag = rnd.choice([0x00000000, 0x0002C056, 0x01306B47, 0x000D4B38, 0x12345678])
        damaged = tag.to_bytes(4, "little") + data[4:]
        if damaged[:4] == data[:4]:
            return
    with pytest.raises(ModelFormatError, match=r"runs short|left over"):
        NcnnModel.parse(text, damaged)


def test_fuzzed_models_that_validate_never_crash_ncnn(corpus, tmp_path):
    """Mutants that pass validation load through open_net and run in a subprocess without crashing."""
    rnd = random.Random(20261121)
    jobs = []
    attempts = 0
    while len(jobs) < 250 and attempts < 20000:
        attempts += 1
        seed = corpus[rnd.randrange(len(SOURCES))]  # only the seeds with weights can be loaded
        text, data = mutate(seed, rnd)
        model = _parse_or_refuse(text, data, seed[3])
        if model is None or (text == seed[1] and data == seed[2]):
            continue
        param, weights = tmp_path / f"m{len(jobs)}.param", tmp_path / f"m{len(jobs)}.bin"
        param.write_text(text)
        weights.write_bytes(data)
        jobs.append(
            {
                "param": str(param),
                "bin": str(weights),
                "shape": list(seed[3]),
                "inputs": model.input_names(),
                "outputs": model.output_names(),
            }
        )
    assert len(jobs) == 250, f"only {len(jobs)} mutants validated"
    lines = _run_in_subprocess(jobs, tmp_path)
    ran = sum(line.startswith("ran") for line in lines)
    assert ran >= len(jobs) // 2, f"only {ran} of {len(jobs)} validated mutants ran"


SYNTH_GRAPHS = ("blazeface.param", "yolo-fastestv2.param", "FastestDet.param")


def test_fuzzed_graphs_with_synthesized_weights_never_crash_ncnn(tmp_path):
    """Mutated benchmark graphs (and a small transformer) with generated weights: more layer types."""
    bench = require_asset("models/ncnn-benchmark")
    seeds = [(name, (bench / name).read_text()) for name in SYNTH_GRAPHS] + [("tiny", TINY_TRANSFORMER)]
    rnd = random.Random(7)
    jobs: list[dict] = []
    attempts = 0
    while len(jobs) < 40 and attempts < 4000:
        attempts += 1
        _, original = seeds[rnd.randrange(len(seeds))]
        text = original
        for _ in range(rnd.choice([1, 1, 2])):
            text = _mutate_param(text, rnd)
        if text == original:
            continue
        try:
            model = NcnnModel.parse(text)
            shape = _declared_shape(model)
            model = synthesize_weights(model, seed=len(jobs), max_bytes=64 << 20)
            validate_model(model, {name: shape for name in model.input_names()})
        except ModelFormatError:
            continue
        param, weights = tmp_path / f"g{len(jobs)}.param", tmp_path / f"g{len(jobs)}.bin"
        param.write_text(text)
        weights.write_bytes(model.bin_bytes())
        jobs.append(
            {
                "param": str(param),
                "bin": str(weights),
                "shape": list(shape),
                "inputs": model.input_names(),
                "outputs": model.output_names(),
            }
        )
    assert len(jobs) == 40
    lines = _run_in_subprocess(jobs, tmp_path)
    assert sum(line.startswith("ran") for line in lines) >= 20
