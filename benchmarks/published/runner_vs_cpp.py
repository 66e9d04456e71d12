"""Show that the Python board runner times ncnn like a C++ program does.

Builds ncnn's C++ library from the source of the *same version* as the installed Python wheel
(its sdist, from the package index pip is configured to use; Debian has no libncnn-dev), compiles a small C++ timing loop against it that
does what ``edge/board/runner.py bench`` does (same options, allocators, input, a fresh extractor
per iteration, every output extracted), then runs both in alternating rounds on the same
.param/.bin and prints both medians and their ratio.

The build is cached in ``~/.cache/edgekit/ncnn-cpp/`` (first run: tens of minutes on 2 cores).
By default it is built like the wheel (``NCNN_RUNTIME_CPU=ON``: kernels for every x86 ISA, the
best picked at run time). ``--native`` instead compiles the whole library for this CPU's ISA
(quicker to build, but the generic code gets auto-vectorised, so it is not like-for-like).

    python3 -m benchmarks.published.runner_vs_cpp [--model M.param] [--precision fp32] [--threads 1]
        [--loops 60] [--rounds 3] [--native] [--json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmarks.published.assets import shared_root
from converters.sources import download_sdist
from edge.board import runner as board_runner

RUNNER = Path(board_runner.__file__)
SHARED = shared_root()
DEFAULT_CACHE = Path.home() / ".cache" / "edgekit" / "ncnn-cpp"
DEFAULT_MODEL = SHARED / "models" / "ncnn" / "nanodet-plus-m_416-pnnx" / "model.param"

# ncnn x86 ISA options and the /proc/cpuinfo flags each needs (off when the CPU lacks them)
X86_OPTIONS = {
    "NCNN_AVX": ["avx"],
    "NCNN_FMA": ["fma"],
    "NCNN_F16C": ["f16c"],
    "NCNN_AVX2": ["avx2"],
    "NCNN_AVXVNNI": ["avx_vnni"],
    "NCNN_AVXVNNIINT8": ["avx_vnni_int8"],
    "NCNN_AVXVNNIINT16": ["avx_vnni_int16"],
    "NCNN_AVXNECONVERT": ["avx_ne_convert"],
    "NCNN_AVX512": ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
    "NCNN_AVX512VNNI": ["avx512_vnni"],
    "NCNN_AVX512BF16": ["avx512_bf16"],
    "NCNN_AVX512FP16": ["avx512_fp16"],
    "NCNN_FMA4": ["fma4"],
    "NCNN_XOP": ["xop"],
}

CPP_LOOP = r"""
// Timing loop equivalent to edgekit's edge/board/runner.py "bench" (and to benchncnn's loop).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "net.h"
#include "cpu.h"
#include "benchmark.h"

int main(int argc, char** argv)
{
    if (argc != 11) {
        fprintf(stderr, "usage: %s param bin input c h w precision threads loops warmup\n", argv[0]);
        return 2;
    }
    const char* param = argv[1];
    const char* bin = argv[2];
    const char* input = argv[3];
    int c = atoi(argv[4]), h = atoi(argv[5]), w = atoi(argv[6]);
    std::string precision = argv[7];
    int threads = atoi(argv[8]), loops = atoi(argv[9]), warmup = atoi(argv[10]);

    ncnn::set_cpu_powersave(0);
    ncnn::set_omp_dynamic(0);
    ncnn::set_omp_num_threads(threads);

    ncnn::UnlockedPoolAllocator blob_allocator;
    ncnn::PoolAllocator workspace_allocator;
    ncnn::Net net;
    bool fp16 = precision != "fp32";
    net.opt.lightmode = true;
    net.opt.num_threads = threads;
    net.opt.use_fp16_packed = fp16;
    net.opt.use_fp16_storage = fp16;
    net.opt.use_fp16_arithmetic = fp16;
    net.opt.use_bf16_storage = false;
    net.opt.use_int8_inference = true;
    net.opt.blob_allocator = &blob_allocator;
    net.opt.workspace_allocator = &workspace_allocator;
    if (net.load_param(param) != 0 || net.load_model(bin) != 0) {
        fprintf(stderr, "cannot load %s / %s\n", param, bin);
        return 1;
    }
    const std::vector<const char*>& outputs = net.output_names();
    ncnn::Mat in(w, h, c);
    in.fill(0.01f);

    std::vector<double> samples;
    for (int i = 0; i < warmup + loops; i++) {
        double t0 = ncnn::get_current_time();
        {
            ncnn::Extractor ex = net.create_extractor();
            ex.input(input, in);
            for (size_t j = 0; j < outputs.size(); j++) {
                ncnn::Mat out;
                ex.extract(outputs[j], out);
            }
        }
        double t1 = ncnn::get_current_time();
        if (i >= warmup) samples.push_back(t1 - t0);
    }
    printf("{\"latencies_ms\": [");
    for (size_t i = 0; i < samples.size(); i++) printf(i ? ", %.6f" : "%.6f", samples[i]);
    printf("]}\n");
    net.clear();
    blob_allocator.clear();
    workspace_allocator.clear();
    return 0;
}
"""


def log(message: str) -> None:
    print(f"[runner_vs_cpp] {message}", file=sys.stderr, flush=True)


def ncnn_version() -> str:
    return importlib.metadata.version("ncnn")


def fetch_source(version: str, cache: Path) -> Path:
    """ncnn's source tree of ``version``, from its sdist on pip's configured indexes (cached).

    Found through the index's simple page and checked against its sha256 there: ``pip download
    ncnn==V`` cannot do it, as the sdist's own metadata carries a build-date version pip rejects.
    """
    tree = cache / f"ncnn-{version}"
    if (tree / "src" / "net.h").is_file():
        return tree
    log(f"downloading the ncnn {version} source archive")
    archive = download_sdist("ncnn", version, cache)
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    archive.unlink()
    if not (tree / "src" / "net.h").is_file():
        raise SystemExit(f"unexpected sdist layout: no {tree}/src/net.h")
    return tree


def isa_options() -> list[str]:
    """-D options enabling exactly the x86 extensions this CPU has (nothing on other machines)."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64", "i686"):
        return []
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [
        f"-D{opt}={'ON' if all(f in flags for f in need) else 'OFF'}" for opt, need in X86_OPTIONS.items()
    ]


def build_library(source: Path, build: Path, jobs: int, runtime_cpu: bool) -> Path:
    """Static libncnn.a built from ``source`` (cached); returns the install prefix.

    ``runtime_cpu``: like the released wheel, every x86 kernel compiled for each ISA and picked at run
    time (the like-for-like build; slow to compile). Otherwise the whole library is compiled for
    this CPU's ISA (faster to build; the generic code gets auto-vectorised, so it can be faster
    than the wheel).
    """
    prefix = build / "install"
    if (prefix / "lib" / "libncnn.a").is_file():
        return prefix
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install -y cmake g++")
    options = [
        "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DNCNN_VULKAN=OFF",
        "-DNCNN_BUILD_TOOLS=OFF", "-DNCNN_BUILD_EXAMPLES=OFF", "-DNCNN_BUILD_BENCHMARK=OFF",
        "-DNCNN_BUILD_TESTS=OFF", "-DNCNN_PYTHON=OFF", "-DNCNN_SHARED_LIB=OFF",
        f"-DNCNN_RUNTIME_CPU={'ON' if runtime_cpu else 'OFF'}", "-DNCNN_OPENMP=ON", "-DNCNN_SIMPLEOCV=OFF",
        *([] if runtime_cpu else isa_options()),
    ]  # fmt: skip
    work = build / "cmake"
    log(f"configuring ncnn ({' '.join(o for o in options if 'AVX' in o or 'FMA' in o)})")
    subprocess.run(["cmake", "-S", str(source), "-B", str(work), *options], check=True, capture_output=True)
    log(f"building libncnn.a with {jobs} jobs (first run only; several minutes)")
    subprocess.run(["nice", "-n", "10", "cmake", "--build", str(work), "-j", str(jobs)], check=True)
    subprocess.run(["cmake", "--install", str(work)], check=True, capture_output=True)
    return prefix


def build_loop(prefix: Path, build: Path) -> Path:
    """Compile the C++ timing loop against the built library."""
    exe = build / "ncnn_timing_loop"
    src = build / "ncnn_timing_loop.cpp"
    if exe.is_file() and src.is_file() and src.read_text() == CPP_LOOP:
        return exe
    src.write_text(CPP_LOOP)
    subprocess.run(
        ["g++", "-O2", "-fopenmp", "-std=c++11", str(src), "-I", str(prefix / "include" / "ncnn"),
         str(prefix / "lib" / "libncnn.a"), "-lpthread", "-o", str(exe)],
        check=True,
    )  # fmt: skip
    return exe


def input_of(param: Path, shape: str | None) -> tuple[str, str]:
    """(input blob, "c,h,w") from the .param's Input layer or ``shape``."""
    for line in param.read_text().splitlines()[2:]:
        tok = line.split()
        if tok and tok[0] == "Input":
            name = tok[4]
            kv = dict(t.split("=", 1) for t in tok[5:] if "=" in t and not t.startswith("-"))
            if shape is None and all(k in kv for k in ("0", "1", "2")):
                shape = f"{kv['2']},{kv['1']},{kv['0']}"
            if shape is None:
                raise SystemExit(f"{param}: give --shape C,H,W")
            return name, shape
    raise SystemExit(f"{param} has no Input layer")


def run_cpp(exe: Path, args: argparse.Namespace, bin_path: Path, input_name: str, shape: str) -> list[float]:
    c, h, w = shape.split(",")
    argv = [str(exe), str(args.model), str(bin_path), input_name, c, h, w, args.precision, str(args.threads),
            str(args.loops), str(args.warmup)]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["latencies_ms"]


def run_python(args: argparse.Namespace, bin_path: Path, input_name: str, shape: str) -> list[float]:
    argv = [sys.executable, str(RUNNER), "bench", "--param", str(args.model), "--bin", str(bin_path),
            "--input", input_name, "--shape", shape, "--precision", args.precision, "--threads",
            str(args.threads), "--loops", str(args.loops), "--warmup", str(args.warmup)]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["runs"][0]["latencies_ms"]


def compare(
    model: Path,
    *,
    shape: str | None = None,
    precision: str = "fp32",
    threads: int = 1,
    loops: int = 60,
    warmup: int = 10,
    rounds: int = 3,
    jobs: int = 2,
    cache: Path = DEFAULT_CACHE,
    runtime_cpu: bool = True,
) -> dict:
    """Time ``model`` with the C++ loop and the Python runner in alternating rounds."""
    version = ncnn_version()
    build = cache / (f"{version}-runtime-cpu" if runtime_cpu else f"{version}-native")
    exe = build_loop(build_library(fetch_source(version, cache / "src"), build, jobs, runtime_cpu), build)
    bin_path = model.with_suffix(".bin")
    if not bin_path.is_file():
        raise SystemExit(f"{bin_path} is missing")
    input_name, shape = input_of(model, shape)
    run = argparse.Namespace(model=model, precision=precision, threads=threads, loops=loops, warmup=warmup)
    cpp: list[float] = []
    py: list[float] = []
    round_medians = []
    for r in range(rounds):
        c = run_cpp(exe, run, bin_path, input_name, shape)
        p = run_python(run, bin_path, input_name, shape)
        cpp += c
        py += p
        round_medians.append({"cpp": statistics.median(c), "runner": statistics.median(p)})
        log(
            f"round {r + 1}: C++ {round_medians[-1]['cpp']:.2f} ms, runner {round_medians[-1]['runner']:.2f} ms"
        )
    return {
        "model": f"{model.parent.name}/{model.name}",
        "ncnn_version": version,
        "cpp_build": "NCNN_RUNTIME_CPU=ON (as the wheel)"
        if runtime_cpu
        else "NCNN_RUNTIME_CPU=OFF, this CPU's ISA",
        "precision": precision,
        "threads": threads,
        "loops_per_round": loops,
        "rounds": rounds,
        "cpp_median_ms": statistics.median(cpp),
        "runner_median_ms": statistics.median(py),
        "ratio_runner_over_cpp": statistics.median(py) / statistics.median(cpp),
        "round_medians_ms": round_medians,
    }


def print_comparison(result: dict) -> None:
    print(
        f"runner vs C++ ({result['cpp_build']}): {result['model']}  ncnn {result['ncnn_version']}  "
        f"{result['precision']}  "
        f"{result['threads']} thread(s)  {result['rounds']} x {result['loops_per_round']} loops"
    )
    print(f"  C++ loop median      {result['cpp_median_ms']:8.2f} ms")
    print(f"  Python runner median {result['runner_median_ms']:8.2f} ms")
    print(f"  ratio runner / C++   {result['ratio_runner_over_cpp']:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=".param with its .bin beside it")
    parser.add_argument("--shape", default=None, help="C,H,W when the Input layer has none")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loops", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating C++ / Python runs")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs for the ncnn build")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--native",
        action="store_true",
        help="build ncnn for this CPU's ISA only (quicker build; not like-for-like with the wheel)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.shape is None and "416" in args.model.parent.name:
        args.shape = "3,416,416"
    result = compare(
        args.model, shape=args.shape, precision=args.precision, threads=args.threads, loops=args.loops,
        warmup=args.warmup, rounds=args.rounds, jobs=args.jobs, cache=args.cache,
        runtime_cpu=not args.native,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_comparison(result)


if __name__ == "__main__":
    main()
