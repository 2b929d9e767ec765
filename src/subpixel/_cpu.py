"""What the CPU offers that changes which kernels are fastest (:class:`CpuCaps`).

Read once per process from ``/proc/cpuinfo``; the backends' choice
(:mod:`subpixel.backends`) and the int8 network (:mod:`subpixel.fast`) use it, and tests
inject their own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuCaps"]


@dataclass(frozen=True)
class CpuCaps:
    """What the CPU offers that changes which backend is fastest (x86 flags).

    :meth:`detect` reads them from ``/proc/cpuinfo``; tests inject their own.
    """

    avx512: bool = False
    vnni: bool = False
    bf16: bool = False
    amx: bool = False

    @classmethod
    def from_flags(cls, flags: set[str]) -> CpuCaps:
        """From a ``/proc/cpuinfo`` ``flags`` set.

        Example:
            >>> CpuCaps.from_flags({"avx512f", "avx512_vnni", "amx_bf16", "amx_tile"}).amx
            True
        """
        return cls(
            avx512="avx512f" in flags,
            vnni="avx512_vnni" in flags or "avx_vnni" in flags,
            bf16="avx512_bf16" in flags or "amx_bf16" in flags,
            amx="amx_bf16" in flags and "amx_tile" in flags,
        )

    @property
    def kind(self) -> str:
        """The kind of CPU, a row of :data:`subpixel.backends.INT8_SLOWER_SCALES`: ``"amx"``,
        ``"vnni"`` or ``"plain"``.

        Example:
            >>> CpuCaps(avx512=True, vnni=True).kind, CpuCaps().kind
            ('vnni', 'plain')
        """
        return "amx" if self.amx else "vnni" if self.vnni else "plain"

    @staticmethod
    @functools.cache
    def detect() -> CpuCaps:
        """This machine's capabilities (all ``False`` where ``/proc/cpuinfo`` is missing)."""
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return CpuCaps()
        for line in text.splitlines():
            if line.startswith("flags"):
                return CpuCaps.from_flags(set(line.partition(":")[2].split()))
        return CpuCaps()
