"""What this CPU offers: the cores this process may use and the instruction sets it has."""
from __future__ import annotations

import functools
import os

#: Any of these flags (Linux /proc/cpuinfo names) means native bf16 arithmetic: AVX512-BF16
#: (Cooper Lake, Zen 4/5) or AMX (Sapphire Rapids and later). Without them oneDNN and
#: OpenVINO fall back to fp32 (or slow emulation), so bf16 would be claimed but not run.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset | None:
    """The feature flags of the first CPU, or None where they cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return " ".join(value.split())
    except OSError:
        pass
    return "this CPU"


def bf16_support(flags: frozenset | None = None) -> str | None:
    """The flag that gives this CPU native bf16, or None when it has none (or cannot tell)."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in BF16_FLAGS if f in (flags or ())), None)


#: Any of these means int8 dot products in hardware: VNNI (AVX512 or AVX), AMX, or AVX2's
#: u8 x s8 multiply-add that oneDNN and OpenVINO use where VNNI is missing.
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2")


def int8_support(flags: frozenset | None = None) -> str | None:
    """The best flag that gives this CPU fast int8 arithmetic, or None."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in INT8_FLAGS if f in (flags or ())), None)


def identity() -> str:
    """This CPU as a measured choice depends on it: its name and its int8 / bf16 flags."""
    return f"{cpu_name()}|{int8_support()}|{bf16_support()}"
