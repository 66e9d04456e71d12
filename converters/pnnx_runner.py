"""Run pnnx's executable (from the ``pnnx`` wheel, without torch) on a simplified ONNX graph."""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from converters.pnnx_support import refuse_unconvertible
from edge.env import env_path
from edge.errors import EdgekitError
from edge.signals import child_command, child_options

#: Highest ONNX IR version the onnxruntime inside pnnx accepts (newer files make it crash).
PNNX_MAX_IR_VERSION = 13
PNNX_TIMEOUT_S = 600


@dataclass(frozen=True)
class PnnxOutput:
    """The ncnn files pnnx wrote and what it printed."""

    param: Path
    bin: Path
    log: str


def find_pnnx() -> Path:
    """Path of the pnnx executable: $EDGEKIT_PNNX, the pnnx wheel's binary, or PATH."""
    path = env_path("EDGEKIT_PNNX")
    if path is not None:
        if not path.is_file():
            raise EdgekitError(f"EDGEKIT_PNNX points to {path}, which does not exist")
        return path
    spec = importlib.util.find_spec("pnnx")  # locates the wheel without importing it (and torch)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for name in ("pnnx", "pnnx.exe"):
                candidate = Path(folder) / name
                if candidate.is_file():
                    return candidate
    found = shutil.which("pnnx")
    if found and Path(found).read_bytes()[:4] == b"\x7fELF":
        return Path(found)
    raise EdgekitError("pnnx executable not found; install it with: pip install --no-deps pnnx")


def pnnx_version(executable: Path) -> str:
    """The pnnx wheel's version, or the executable's path when it did not come from the wheel."""
    try:
        from importlib.metadata import version

        return version("pnnx")
    except Exception:
        return str(executable)


def prepare_for_pnnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy pnnx can read: IR version capped to what its embedded onnxruntime accepts."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ir_version = min(copy.ir_version, PNNX_MAX_IR_VERSION)
    return copy


def _failure_reason(log: str, returncode: int) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in log.splitlines()]
    meaningful = [ln for ln in lines if re.search(r"fail|error|unsupported|not supported", ln, re.I)]
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    if -returncode == signal.SIGSEGV or returncode == 139:
        how = "crashed (segmentation fault)"
    detail = meaningful[-1] if meaningful else (lines[-1] if lines else "no output")
    return f"pnnx {how}: {detail[:300]}"


def run_pnnx(model: onnx.ModelProto, input_shape: list[int], workdir: Path, *, fp16: bool) -> PnnxOutput:
    """Convert ``model`` with pnnx inside ``workdir``; every side file stays there too."""
    refuse_unconvertible(model)
    executable = find_pnnx()
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="pnnx-") as tmp:
        scratch = Path(tmp)
        src = scratch / "model.onnx"
        onnx.save(prepare_for_pnnx(model), str(src))
        param, binf = workdir / "ncnn.param", workdir / "ncnn.bin"
        shape = ",".join(str(d) for d in input_shape)
        argv = [
            str(executable),
            str(src),
            f"inputshape=[{shape}]",
            f"fp16={1 if fp16 else 0}",
            f"ncnnparam={param}",
            f"ncnnbin={binf}",
            f"ncnnpy={scratch / 'ncnn.py'}",
            f"pnnxparam={scratch / 'pnnx.param'}",
            f"pnnxbin={scratch / 'pnnx.bin'}",
            f"pnnxpy={scratch / 'pnnx.py'}",
            f"pnnxonnx={scratch / 'pnnx.onnx'}",
        ]
        try:
            proc = subprocess.run(
                child_command(argv),
                cwd=scratch,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PNNX_TIMEOUT_S,
                **child_options(),  # killed with edgekit, even by kill -9
            )
        except subprocess.TimeoutExpired:
            raise EdgekitError(f"pnnx did not finish within {PNNX_TIMEOUT_S} s") from None
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise EdgekitError(_failure_reason(log, proc.returncode))
    if not param.is_file() or not binf.is_file():
        raise EdgekitError("pnnx finished but wrote no ncnn model; " + _failure_reason(log, 0))
    return PnnxOutput(param=param, bin=binf, log=log)
