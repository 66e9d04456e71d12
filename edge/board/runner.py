#!/usr/bin/env python3
"""edgekit's board-side benchmark runner: one file that needs only python3 and ncnn.

The harness copies this file to a target and runs it there:

    python3 runner.py probe
        prints the board's description (CPU, cores, governor, OS, ncnn version, ARM fp16 /
        dotprod support) as one JSON line.
    python3 runner.py bench --param M.param --bin M.bin --input data --shape 3,416,416 \\
            --precision fp16 --threads 1,2,4 --loops 100 --warmup 10 [--powersave 0|1|2]
        loads the model once per thread count (timed), runs the warm-up, then times each
        inference like ncnn's benchncnn (new extractor, input, extract every output) and prints
        the raw per-iteration latencies, load time and peak RSS as one JSON line. --powersave is
        ncnn's set_cpu_powersave: 0 all cores, 1 the little cluster, 2 the big cluster.

    python3 runner.py infer --param M.param --bin M.bin --input data --precision fp16 \
            --tensors a.npy,b.npy --out outputs.npz
        runs each CxHxW float32 tensor (needs numpy) with the same options and saves every
        output as ``<output>__<index>`` in one .npz: raw outputs to compare across CPUs.

Errors are printed as JSON too: ``{"error": "missing_module", "module": "ncnn"}`` (exit 3),
``{"error": "model", "message": ...}`` (exit 4), ``{"error": "usage", ...}`` (exit 2).
Keep this file free of non-standard imports besides ncnn (and numpy for infer): it runs on bare
boards. Its :func:`ncnn_options` is edgekit's one runtime policy; the package re-uses it.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import sys
import time

GOVERNOR_PATH = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
PRECISIONS = ("fp32", "fp16", "int8")


def emit(obj: dict, code: int = 0) -> None:
    """Print ``obj`` as one JSON line on stdout and exit with ``code``."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    if code:  # leave at once: tearing down half-used ncnn objects at exit can crash
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def import_ncnn():
    """The ncnn module, or a missing_module error the harness turns into a fix-it message."""
    try:
        import ncnn
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "ncnn"
        emit({"error": "missing_module", "module": missing, "message": str(exc)}, 3)
    return ncnn


# -- describing the board ---------------------------------------------------------------------


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def parse_cpuinfo(text: str) -> dict:
    """CPU model name, logical core count and feature flags from /proc/cpuinfo text."""
    model = None
    parts: set[str] = set()
    features: set[str] = set()
    cores = 0
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            cores += 1
        elif key in ("model name", "hardware", "cpu model", "uarch") and value and model is None:
            model = value
        elif key == "cpu part" and value:
            parts.add(value)
        elif key in ("features", "flags"):
            features.update(value.split())
    if model is None and parts:
        model = "ARM CPU part " + "/".join(sorted(parts))
    return {"model": model, "cores": cores or None, "features": sorted(features)}


# Linux AT_HWCAP bits on aarch64 (what ncnn itself checks): asimd, fphp/asimdhp, asimddp
AT_HWCAP = 16
HWCAP_ASIMD, HWCAP_ASIMDHP, HWCAP_ASIMDDP = 1 << 1, 1 << 10, 1 << 20


def read_hwcap() -> int | None:
    """AT_HWCAP from /proc/self/auxv on 64-bit Linux (QEMU user mode emulates it too)."""
    try:
        with open("/proc/self/auxv", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    words = array.array("Q", data[: len(data) // 8 * 8])
    for i in range(0, len(words) - 1, 2):
        if words[i] == AT_HWCAP:
            return int(words[i + 1])
    return None


def os_description() -> str:
    release = read_text("/etc/os-release") or ""
    pretty = None
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
    kernel = f"{platform.system()} {platform.release()}"
    return f"{pretty} ({kernel})" if pretty else kernel


def probe() -> dict:
    """Everything a report records about this board."""
    ncnn = import_ncnn()
    cpu = parse_cpuinfo(read_text("/proc/cpuinfo") or "")
    governor = read_text(GOVERNOR_PATH)
    has_feature = cpu["features"].__contains__

    def supported(name: str) -> bool:
        fn = getattr(ncnn, name, None)
        return bool(fn()) if fn is not None else False

    machine = platform.machine()
    arm = machine.startswith(("aarch64", "arm"))
    hwcap = read_hwcap() if machine == "aarch64" else None
    if hwcap is not None:
        caps = {"asimd": HWCAP_ASIMD, "asimdhp": HWCAP_ASIMDHP, "asimddp": HWCAP_ASIMDDP}
        has_feature = {name for name, bit in caps.items() if hwcap & bit}.__contains__
    return {
        "cpu": cpu["model"] or machine,
        "cores": cpu["cores"] or os.cpu_count(),
        "governor": governor.strip() if governor else None,
        "os": os_description(),
        "machine": machine,
        "ncnn_version": getattr(ncnn, "__version__", "unknown"),
        # ncnn runs its fp16-arithmetic / dotprod kernels when the CPU has them (fp16 and int8
        # runs; fp32 runs turn fp16 off)
        "arm_fp16": arm and (supported("cpu_support_arm_asimdhp") or has_feature("asimdhp")),
        "arm_dotprod": arm and (supported("cpu_support_arm_asimddp") or has_feature("asimddp")),
        "arm_neon": arm and (supported("cpu_support_arm_neon") or has_feature("asimd")),
        "x86_avx2": bool(supported("cpu_support_x86_avx2")),
        "python": platform.python_version(),
        "ncnn_cpu_count": ncnn.get_cpu_count(),
        # big.LITTLE clusters as ncnn sees them (what bench --powersave 1 / 2 selects)
        "ncnn_little_cores": ncnn.get_little_cpu_count() if hasattr(ncnn, "get_little_cpu_count") else None,
        "ncnn_big_cores": ncnn.get_big_cpu_count() if hasattr(ncnn, "get_big_cpu_count") else None,
    }


# -- memory -----------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process (VmHWM), in MiB."""
    status = read_text("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):
        return None


# -- timing -----------------------------------------------------------------------------------


def ncnn_options(precision: str, threads: int) -> dict[str, bool | int]:
    """edgekit's one runtime policy: the ``ncnn.Option`` values for a precision and thread count.

    Every path that runs a build uses this (sessions, parity, calibration, speed checks, this runner,
    through :mod:`edge.runtime.policy`). fp32 turns ncnn's fp16 paths off. fp16 and int8 turn them on:
    for an INT8 build they cover its float layers and the int8 kernels' float sides. Measured (see
    ``edge/runtime/policy.py``): identical outputs on x86 and on ARM without fp16 arithmetic; on
    ARMv8.2+ ncnn then picks its fp16 kernels for ~96 % of the layers at a cost of ~1e-4 output cosine,
    a thirtieth of INT8's own error. INT8 inference stays on for every precision: it only concerns
    quantized layers, and ncnn crashes loading a quantized model with it off.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})")
    fp16 = precision != "fp32"
    return {
        "num_threads": threads,
        "lightmode": True,
        "use_vulkan_compute": False,
        "use_fp16_packed": fp16,
        "use_fp16_storage": fp16,
        "use_fp16_arithmetic": fp16,
        "use_bf16_storage": False,
        "use_int8_inference": True,
    }


def configure(opt, precision: str, threads: int) -> None:
    """Apply :func:`ncnn_options` to an ``ncnn.Option``."""
    for name, value in ncnn_options(precision, threads).items():
        setattr(opt, name, value)


def load_net(ncnn, args, threads: int, allocators=None):
    """A net with the precision's options loaded from args.param/args.bin; (net, load ms)."""
    net = ncnn.Net()
    configure(net.opt, args.precision, threads)
    if allocators:
        net.opt.blob_allocator, net.opt.workspace_allocator = allocators
    t0 = time.perf_counter()
    if net.load_param(args.param) != 0:
        emit({"error": "model", "message": f"ncnn could not load {args.param}"}, 4)
    # without a .bin: benchncnn's way, zero weights of the right size
    ret = net.load_model(args.bin) if args.bin else net.load_model(ncnn.DataReaderFromEmpty())
    load_ms = (time.perf_counter() - t0) * 1000.0
    if ret != 0:
        emit({"error": "model", "message": f"ncnn could not load weights {args.bin or '(generated)'}"}, 4)
    return net, load_ms


def check_blobs(net, in_name: str, outputs: list[str]) -> None:
    """Refuse unknown blob names up front: extracting from a net missing its input can crash ncnn."""
    names = {blob.name for blob in net.blobs()}
    for name in [in_name, *outputs]:
        if name not in names:
            emit({"error": "model", "message": f"the model has no blob named {name!r}"}, 4)


def time_net(net, in_name: str, mat, outputs: list[str], loops: int, warmup: int) -> list[float]:
    """Per-iteration latency (ms) of a fresh extractor, one input, every output extracted.

    The first ``warmup`` iterations are not recorded; every iteration checks ncnn's return codes.
    """
    clock = time.perf_counter
    samples = []
    for i in range(warmup + loops):
        t0 = clock()
        ex = net.create_extractor()
        ok = ex.input(in_name, mat) == 0
        for name in outputs:
            ok = ex.extract(name)[0] == 0 and ok
        del ex
        elapsed = clock() - t0
        if not ok:
            message = f"inference failed: no input blob {in_name!r} or an output of {outputs} not computed"
            emit({"error": "model", "message": message}, 4)
        if i >= warmup:
            samples.append(elapsed * 1000.0)
    return samples


def bench(args) -> dict:
    ncnn = import_ncnn()
    c, h, w = (int(v) for v in args.shape.split(","))
    threads_list = [int(v) for v in args.threads.split(",")]
    ncnn.set_cpu_powersave(args.powersave)  # 0 all cores, 1 little cluster, 2 big cluster
    if hasattr(ncnn, "set_omp_dynamic"):
        ncnn.set_omp_dynamic(0)
    runs = []
    for threads in threads_list:
        if hasattr(ncnn, "set_omp_num_threads"):
            ncnn.set_omp_num_threads(threads)
        allocators = (ncnn.UnlockedPoolAllocator(), ncnn.PoolAllocator())
        reset_ok = reset_peak_rss()
        net, load_ms = load_net(ncnn, args, threads, allocators)
        mat = ncnn.Mat(w, h, c)
        mat.fill(0.01)
        outputs = [n for n in args.outputs.split(",") if n] if args.outputs else list(net.output_names())
        check_blobs(net, args.input, outputs)
        samples = time_net(net, args.input, mat, outputs, args.loops, args.warmup)
        runs.append(
            {
                "threads": threads,
                "load_ms": load_ms,
                "latencies_ms": samples,
                "peak_rss_mb": peak_rss_mb(),
                "peak_rss_scope": "this thread count" if reset_ok else "whole process",
                "outputs": outputs,
            }
        )
        net.clear()
        del net, mat
        for allocator in allocators:
            allocator.clear()
    return {"precision": args.precision, "powersave": ncnn.get_cpu_powersave(), "runs": runs}


def infer(args) -> dict:
    ncnn = import_ncnn()
    try:
        import numpy as np
    except ImportError:
        emit({"error": "missing_module", "module": "numpy", "message": "numpy is needed by infer"}, 3)
    net, _ = load_net(ncnn, args, int(args.threads))
    net.opt.lightmode = False  # outputs may be blobs other layers consume
    outputs = [n for n in args.outputs.split(",") if n] if args.outputs else list(net.output_names())
    check_blobs(net, args.input, outputs)
    arrays = {}
    for index, path in enumerate(p for p in args.tensors.split(",") if p):
        data = np.ascontiguousarray(np.load(path), dtype=np.float32)  # must outlive the extractor
        mat = ncnn.Mat(data)
        ex = net.create_extractor()
        if ex.input(args.input, mat) != 0:
            emit({"error": "model", "message": f"the model has no input blob {args.input!r}"}, 4)
        for name in outputs:
            ret, out = ex.extract(name)
            if ret != 0:
                emit({"error": "model", "message": f"extracting {name!r} failed (code {ret})"}, 4)
            arrays[f"{name}__{index}"] = np.array(out, dtype=np.float32, copy=True)
        del ex, mat
    np.savez(args.out, **arrays)
    return {"precision": args.precision, "outputs": outputs, "saved": args.out}


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(prog="edgekit-runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("probe", help="describe this board")
    b = sub.add_parser("bench", help="time one model")
    b.add_argument("--param", required=True)
    b.add_argument("--bin", default="", help="weights; empty: zero weights like benchncnn")
    b.add_argument("--input", required=True, help="input blob name")
    b.add_argument("--shape", required=True, help="C,H,W")
    b.add_argument("--outputs", default="", help="output blob names (default: the graph's outputs)")
    b.add_argument("--precision", choices=PRECISIONS, default="fp32")
    b.add_argument("--threads", default="1")
    b.add_argument("--loops", type=int, default=100)
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument(
        "--powersave", type=int, choices=(0, 1, 2), default=0, help="ncnn's cores: 0 all, 1 little, 2 big"
    )
    i = sub.add_parser("infer", help="save raw outputs for input tensors (needs numpy)")
    i.add_argument("--param", required=True)
    i.add_argument("--bin", default="")
    i.add_argument("--input", required=True)
    i.add_argument("--outputs", default="")
    i.add_argument("--precision", choices=PRECISIONS, default="fp32")
    i.add_argument("--threads", default="1")
    i.add_argument("--tensors", required=True, help="comma-separated .npy files, CxHxW float32")
    i.add_argument("--out", required=True, help=".npz file to write")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "probe":
        emit(probe())
    elif args.command == "bench":
        emit(bench(args))
    elif args.command == "infer":
        emit(infer(args))
    else:
        emit({"error": "usage", "message": parser.format_usage().strip()}, 2)


if __name__ == "__main__":
    main()
