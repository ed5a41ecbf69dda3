"""What the machine can do fast: the CPU model and its flags, native bf16, the GPU name.

Why it matters: bfloat16 on a CPU without native bf16 instructions (AVX512-BF16 or AMX) is
emulated and *slower* than float32 — measured with `benchmarks/generate.py` on an AVX2-only AMD
EPYC (2 cores): float32 5.08 img/s, bfloat16 0.50 img/s (about 10× slower). So a bf16 request on
such a CPU falls back to float32 with a warning unless the caller insists.
"""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path
from typing import Any

RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""/proc/cpuinfo flags that decide float32 and bfloat16 speed on x86."""
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SLOW_BF16 = (
    "bfloat16 on a CPU without native bf16 (AVX512-BF16 / AMX) is emulated: about 10x slower than "
    "float32 (measured: float32 5.08 img/s, bfloat16 0.50 img/s on an AVX2-only AMD EPYC)"
)


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) from /proc/cpuinfo; ("", {}) where there is none (macOS, Windows)."""
    path = Path("/proc/cpuinfo")
    model, flags = "", frozenset()
    try:
        text = path.read_text()
    except OSError:
        return platform.processor() or platform.machine(), flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    """The CPU's model name, e.g. "AMD EPYC 7B13"."""
    return _cpuinfo()[0]


def cpu_flags() -> dict[str, bool]:
    """Which of RELEVANT_FLAGS the CPU has."""
    flags = _cpuinfo()[1]
    return {f: f in flags for f in RELEVANT_FLAGS}


def torch_cpu_capability() -> str | None:
    """torch's own reading of the CPU's vector ISA ("AVX2", "AVX512", ...), or None."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - old torch or no torch: fall back to /proc/cpuinfo
        return None


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Apple/ARM bf16)."""
    flags = _cpuinfo()[1]
    if any(f in flags for f in NATIVE_BF16_FLAGS) or "bf16" in flags:  # "bf16": ARM Features
        return True
    cap = (torch_cpu_capability() or "").upper()
    return "AMX" in cap


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA)."""
    try:
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or a broken driver: report none
        pass
    return []


def describe() -> dict[str, Any]:
    """The hardware facts a benchmark or run log records."""
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "torch_cpu_capability": torch_cpu_capability(),
        "native_bf16": native_bf16(),
        "gpus": gpu_names(),
    }


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def fit_dtype(dtype: str, device: str, *, force: bool = False) -> str:
    """The dtype to run: `dtype`, except bfloat16 on a CPU without native bf16, which becomes
    float32 with a one-time RuntimeWarning (unless `force`, which keeps bf16 and still warns)."""
    if dtype != "bfloat16" or not str(device).startswith("cpu") or native_bf16():
        return dtype
    if force:
        _warn_once(f"{SLOW_BF16}; running bfloat16 anyway as forced")
        return dtype
    _warn_once(f"{SLOW_BF16}; running float32 instead (force_bf16 / --force-bf16 insists)")
    return "float32"
