"""Time the compiled Winograd F(4×4, 3×3) convolution against PyTorch's kernels.

For ESPCN's 3×3 layers (64→32, and 32→s² at ×2/×3/×4) on one band of rows, one thread:
``subpixel.fast._kernels.winograd.Winograd3x3`` (each instruction-set copy this CPU has), NNPACK's
Winograd F(6×6, 3×3) (what the fp32 path used before), oneDNN's ``F.conv2d`` (channels
last) and, for ≤ 16 output channels, the direct kernel ``conv3x3_rows``. Prints a table of
medians; "GMAC/s" counts the multiply-adds of a direct convolution, so Winograd can exceed
the machine's peak.

    python benchmarks/bench_winograd.py --rows 160 --width 640 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from subpixel.fast._kernels import conv3x3, winograd


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _nnpack_ready() -> bool:
    from subpixel.fast import nnpack_enabled, tune_process

    tune_process(malloc=False)  # a benchmark may set NNPACK up process-wide
    return nnpack_enabled()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=160, help="output rows of the band")
    parser.add_argument("--width", type=int, default=640, help="pixels per row")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per variant")
    args = parser.parse_args()
    if not winograd.available():
        raise SystemExit("subpixel._winograd was not built (no C compiler at install time?)")
    torch.set_num_threads(1)
    nnpack = _nnpack_ready()
    rows, width = args.rows, args.width
    print(f"{rows}×{width} output pixels per call, 1 thread, median of {args.repeats}\n")
    print("| layer | variant | ms | GMAC/s (direct-equivalent) |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for c_in, c_out in ((64, 32), (32, 9), (32, 4), (32, 16)):
        for name, ms, gmacs in _time_layer(c_in, c_out, rows, width, args.repeats, nnpack, g):
            print(f"| {c_in}→{c_out} | {name} | {ms:.2f} | {gmacs:.1f} |")


def _time_layer(
    c_in: int, c_out: int, rows: int, width: int, repeats: int, nnpack: bool, g: torch.Generator
) -> list[tuple[str, float, float]]:
    """(variant, ms, direct-equivalent GMAC/s) for one layer shape."""
    from subpixel import _winograd  # type: ignore[attr-defined]

    x = torch.randn(rows + 2, width, c_in, generator=g)
    wt = torch.randn(c_out, c_in, 3, 3, generator=g)
    b = torch.randn(c_out, generator=g)
    out = torch.empty(rows, width, c_out)
    conv = winograd.Winograd3x3.create(wt, b)
    assert conv is not None
    variants: list[tuple[str, Callable[[], object]]] = []
    top = _winograd.set_isa(2)
    _winograd.set_isa(top)
    for isa, name in ((2, "AVX-512"), (1, "AVX2"), (0, "portable")):
        if isa <= top:
            run = lambda i=isa: _with_isa(i, conv, x, out)  # noqa: E731
            variants.append((f"subpixel Winograd F(4,3), {name}", run))
    planar = x.permute(2, 0, 1)[None].contiguous()
    if nnpack:
        run = lambda: torch._nnpack_spatial_convolution(planar, wt, b, [0, 1])  # noqa: E731
        variants.append(("NNPACK Winograd F(6,3)", run))
    cl = planar.contiguous(memory_format=torch.channels_last)
    variants.append(("oneDNN F.conv2d, channels last", lambda: F.conv2d(cl, wt, b, padding=(0, 1))))
    if c_out <= 16 and conv3x3.available():
        variants.append(("subpixel direct (conv3x3_rows)", lambda: conv3x3.rows(x, wt, b, out)))
    macs = rows * width * c_in * c_out * 9
    results = []
    for name, fn in variants:
        ms = _median_ms(fn, repeats)
        results.append((name, ms, macs / ms / 1e6))
    return results


def _with_isa(isa: int, conv: winograd.Winograd3x3, x: torch.Tensor, out: torch.Tensor) -> None:
    from subpixel import _winograd  # type: ignore[attr-defined]

    before = _winograd.set_isa(isa)
    try:
        conv(x, out, relu=True)
    finally:
        _winograd.set_isa(before)


if __name__ == "__main__":
    main()
