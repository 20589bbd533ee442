"""Modal GPU types: the one place that knows names, prices and memory.

Modal accepts any GPU string at import time and fails only at deploy, so specs are checked here.
Prices are Modal's public per-second prices (2026); VRAM is per device in GiB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuType:
    name: str
    usd_per_second: float
    vram_gb: int


GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType("T4", 0.000164, 16),
        GpuType("L4", 0.000222, 24),
        GpuType("A10", 0.000306, 24),
        GpuType("A10G", 0.000306, 24),
        GpuType("L40S", 0.000542, 48),
        GpuType("A100", 0.000583, 40),
        GpuType("A100-40GB", 0.000583, 40),
        GpuType("A100-80GB", 0.000694, 80),
        GpuType("RTX-PRO-6000", 0.000842, 96),
        GpuType("H100", 0.001097, 80),
        GpuType("H100!", 0.001097, 80),
        GpuType("H200", 0.001261, 141),
        GpuType("B200", 0.001736, 180),
        GpuType("B200+", 0.001736, 180),
    )
}

MAX_GPU_COUNT = 8
_GPU_RE = re.compile(r"^(?P<name>[A-Za-z0-9!+-]+?)(?::(?P<count>\d+))?$")


@dataclass(frozen=True)
class GpuRequest:
    """A parsed GPU string such as ``L40S`` or ``H100:2``."""

    type: GpuType
    count: int

    @property
    def spec(self) -> str:
        return self.type.name if self.count == 1 else f"{self.type.name}:{self.count}"

    @property
    def usd_per_second(self) -> float:
        return self.type.usd_per_second * self.count

    @property
    def vram_gb(self) -> int:
        return self.type.vram_gb * self.count


def parse_gpu(value: str) -> GpuRequest:
    """Parse and check a GPU string; raises ValueError with the list of valid names."""
    match = _GPU_RE.match(value.strip())
    name = match.group("name") if match else value
    canonical = {k.upper(): k for k in GPU_TYPES}.get(name.upper()) if match else None
    if canonical is None:
        valid = ", ".join(GPU_TYPES)
        raise ValueError(f"unknown GPU '{value}'; Modal offers: {valid} (optionally ':N', N<=8)")
    count = int(match.group("count") or 1)
    if not 1 <= count <= MAX_GPU_COUNT:
        raise ValueError(f"GPU count in '{value}' must be 1..{MAX_GPU_COUNT}")
    return GpuRequest(GPU_TYPES[canonical], count)
