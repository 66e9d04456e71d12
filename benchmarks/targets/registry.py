"""Turn ``--target`` strings into targets: local, ssh://user@host[:port], adb[://serial], qemu-aarch64[:CPU]."""

from __future__ import annotations

from urllib.parse import urlsplit

from benchmarks.targets.base import Target
from edge.errors import EdgekitError

TARGET_FORMS = "local, ssh://user@host[:port], adb[://serial], qemu-aarch64[:CPU]"


def parse_target(spec: str) -> Target:
    """The target a ``--target`` string names; a clear error for anything else."""
    spec = spec.strip()
    if spec == "local":
        from benchmarks.targets.local import LocalTarget

        return LocalTarget()
    if spec in ("qemu-aarch64", "qemu"):
        from benchmarks.targets.qemu import QemuTarget

        return QemuTarget()
    if spec.startswith("qemu-aarch64:"):
        from benchmarks.targets.qemu import QemuTarget

        cpu = spec.split(":", 1)[1]
        if not cpu or not all(c.isalnum() or c in "-_." for c in cpu):
            raise EdgekitError(
                f"bad target {spec!r}; expected qemu-aarch64[:CPU], e.g. qemu-aarch64:cortex-a72"
            )
        return QemuTarget(cpu=cpu, name=spec)
    if spec == "adb" or spec.startswith("adb://"):
        from benchmarks.targets.adb import AdbTarget, parse_target_spec
        from benchmarks.targets.base import TargetError

        try:
            return AdbTarget(parse_target_spec(spec))
        except TargetError as exc:
            raise EdgekitError(str(exc)) from None
    if spec.startswith("ssh://"):
        return _parse_ssh(spec)
    raise EdgekitError(f"unknown target {spec!r}; use one of: {TARGET_FORMS}")


def _parse_ssh(spec: str) -> Target:
    from benchmarks.targets.ssh import SshTarget

    try:
        parts = urlsplit(spec)
    except ValueError as exc:  # an unclosed IPv6 bracket and the like
        raise EdgekitError(f"bad ssh target {spec!r}: {exc}; expected ssh://user@host[:port]") from None
    try:
        port = parts.port
    except ValueError:
        raise EdgekitError(f"bad port in target {spec!r}") from None
    if port == 0:
        raise EdgekitError(f"bad port in target {spec!r}: ports run from 1 to 65535")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.password:
        raise EdgekitError(
            f"bad ssh target {spec!r}; expected ssh://user@host[:port] (keys only, no password)"
        )
    return SshTarget(parts.hostname, user=parts.username, port=port)


def parse_targets(specs: list[str]) -> list[Target]:
    """Several ``--target`` options (a fleet); no option means ``local``."""
    return [parse_target(s) for s in specs or ["local"]]
