"""What this CPU offers: the cores this process may use and the instruction sets it has, and
claims on cores shared by every engine on the machine (`claim_cores`)."""
from __future__ import annotations

import contextlib
import functools
import os
import socket
import weakref

#: Any of these flags (Linux /proc/cpuinfo names) means native bf16 arithmetic: AVX512-BF16
#: (Cooper Lake, Zen 4/5) or AMX (Sapphire Rapids and later). Without them oneDNN and
#: OpenVINO fall back to fp32 (or slow emulation), so bf16 would be claimed but not run.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _field(cpuinfo: str, keys: tuple[str, ...]) -> str | None:
    """The value of the first line of `cpuinfo` whose key is one of `keys` (the first CPU's),
    or None where there is none or the file cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in keys:
                    return value
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset | None:
    """The feature flags of the first CPU, or None where they cannot be read (not Linux)."""
    value = _field(cpuinfo, ("flags", "Features"))
    return None if value is None else frozenset(value.split())


def cpu_vendor(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The first CPU's vendor_id ("GenuineIntel", "AuthenticAMD", ...), None where unknown."""
    value = _field(cpuinfo, ("vendor_id",))
    return None if value is None else value.strip()


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    value = _field(cpuinfo, ("model name",))
    return "this CPU" if value is None else " ".join(value.split())


#: oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA, which OpenVINO's CPU plugin honours too), lowest
#: first, and the lowest level at which each flag above is used.
ISA_LEVELS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
              "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
              "AVX512_CORE_AMX_FP16")
FLAG_ISA = {"avx2": "AVX2", "avx_vnni": "AVX2_VNNI", "avx512_vnni": "AVX512_CORE_VNNI",
            "avx512_bf16": "AVX512_CORE_BF16", "amx_int8": "AVX512_CORE_AMX",
            "amx_bf16": "AVX512_CORE_AMX"}


def _usable(flag: str) -> bool:
    """Whether the kernels may use `flag`: ONEDNN_MAX_CPU_ISA can cap them below what the CPU
    has (to emulate an older CPU, or by a user's choice), and then the flag does not count."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap not in ISA_LEVELS or flag not in FLAG_ISA:
        return True  # unset, ALL / DEFAULT or unknown: no cap
    return ISA_LEVELS.index(FLAG_ISA[flag]) <= ISA_LEVELS.index(cap)


def bf16_support(flags: frozenset | None = None) -> str | None:
    """The flag that gives this CPU native bf16, or None when it has none (or cannot tell)."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in BF16_FLAGS if f in (flags or ()) and _usable(f)), None)


#: Any of these means int8 dot products in hardware: VNNI (AVX512 or AVX), AMX, or AVX2's
#: u8 x s8 multiply-add that oneDNN and OpenVINO use where VNNI is missing.
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2")


def int8_support(flags: frozenset | None = None) -> str | None:
    """The best flag that gives this CPU fast int8 arithmetic, or None."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in INT8_FLAGS if f in (flags or ()) and _usable(f)), None)


def identity() -> str:
    """This CPU as a measured choice depends on it: its name and its int8 / bf16 flags."""
    return f"{cpu_name()}|{int8_support()}|{bf16_support()}"


#: The names of the core claims: Linux abstract socket names (no file, nothing left behind,
#: released by the kernel when the holder ends, however it ends).
CLAIM_PREFIX = "resnet-core-"


class CoreClaim:
    """Cores held by a process for its engines, so that engines in other processes on the
    machine (several Ray actors on a node, shard runs side by side) take other ones;
    `close()`, collection or the end of the process releases them."""

    def __init__(self, cores: list[int], held: list):
        self.cores = cores
        self.close = weakref.finalize(self, _release, held)  # also when collected


def _release(held: list) -> None:
    for s in held:
        s.close()


def claim_cores(count: int) -> CoreClaim | None:
    """`count` of this process's cores, the ones no other engine on the machine holds first;
    where too few are free, the rest are shared with other engines, starting at a core that
    depends on the process (so that overflowing engines spread rather than pile up on the
    first cores). A claim is the binding of an abstract socket named for the core (Linux).
    None where cores cannot be claimed or pinned (another OS, no sockets left)."""
    if not hasattr(os, "sched_setaffinity") or not hasattr(socket, "AF_UNIX"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    count = max(1, min(count, len(allowed)))
    cores, held = [], []
    for core in allowed:
        if len(cores) == count:
            break
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:  # e.g. out of descriptors: no claims at all
            _release(held)
            return None
        try:
            s.bind(f"\0{CLAIM_PREFIX}{core}")
        except OSError:  # held by another engine
            s.close()
            continue
        cores.append(core)
        held.append(s)
    start = os.getpid() % len(allowed)
    for core in allowed[start:] + allowed[:start]:
        if len(cores) == count:
            break
        if core not in cores:
            cores.append(core)
    return CoreClaim(sorted(cores), held)


@contextlib.contextmanager
def thread_on(cores):
    """The calling thread limited to `cores` for the block, then given its cores back: an
    engine created inside takes its cores from the thread that creates it."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cores)
        pinned = True
    except OSError:  # the cores were taken away meanwhile (a changed cpuset): as it was
        pinned = False
    try:
        yield
    finally:
        if pinned:
            os.sched_setaffinity(0, before)
