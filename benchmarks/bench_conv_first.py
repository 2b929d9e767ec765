"""Speed of the compiled first ESPCN layer (subpixel.fast._kernels.conv_first.rows) on one thread.

One band of ``--rows`` output rows, ``--width`` pixels, a ``--k``×``--k`` convolution of
one zero-padded channel into ``--cout`` channels (float32, bias, ReLU unless ``--no-relu``),
timed against what it replaces and against PyTorch's convolution:

* ``conv_first_rows``: the compiled kernel, channels-last output, ReLU fused;
* ``im2col + addmm``: the (k·k, rows·w) patch matrix copied from an ``as_strided`` view,
  then ``torch.addmm(bias, weight, col)`` (channels-first output), then ``relu_``;
* ``F.conv2d``: ``F.conv2d(padded[None, None], weight, bias)``, then ``relu_``.

Each case runs ``--repeats`` times in a row after a warm-up (not interleaved: F.conv2d's
large temporaries slow the next case's fresh allocations); medians are reported. Run it
alone on the machine (``flock /tmp/cpu.lock``, and ``OMP_WAIT_POLICY=PASSIVE``): torch
uses one thread here (``torch.set_num_threads(1)``).

Usage:
    python benchmarks/bench_conv_first.py
    python benchmarks/bench_conv_first.py --rows 160 --width 640 --k 5 --cout 64 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from subpixel.fast._kernels import conv_first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--cout", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-relu", dest="relu", action="store_false")
    ap.add_argument(
        "--isa", type=int, default=2, help="kernel copy: 0 SSE2, 1 AVX2+FMA, 2 AVX-512 (most)"
    )
    args = ap.parse_args()
    kernel = conv_first.kernel()
    if kernel is None:
        print("subpixel._conv_first was not built", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    kernel.set_isa(args.isa)
    rows, w, k, co = args.rows, args.width, args.k, args.cout
    g = torch.Generator().manual_seed(0)
    padded = torch.randn(rows + k - 1, w + k - 1, generator=g)
    wt = torch.randn(co, k, k, generator=g) / k
    b = torch.randn(co, generator=g)
    out = torch.empty(rows, w, co)
    wp = w + k - 1
    w2 = wt.view(co, k * k)
    b2 = b[:, None]

    def ours() -> None:
        assert conv_first.rows(padded, wt, b, out, args.relu, 1)

    def im2col() -> None:  # as subpixel.fast did: a fresh patch matrix per band
        col = torch.empty(k * k, rows * w)
        view = padded.as_strided((k, k, rows, w), (wp, 1, wp, 1))
        col.view(k, k, rows, w).copy_(view)
        z = torch.addmm(b2, w2, col)
        if args.relu:
            z.relu_()

    def conv2d() -> None:
        z = F.conv2d(padded[None, None], wt[:, None], b)
        if args.relu:
            z.relu_()

    cases: dict[str, Callable[[], None]] = {
        "conv_first_rows": ours,
        "im2col + addmm": im2col,
        "F.conv2d": conv2d,
    }
    # the same values (channels first for the others)
    ours()
    ref = F.conv2d(padded[None, None].double(), wt[:, None].double(), b.double())[0]
    if args.relu:
        ref = ref.relu()
    err = (out.permute(2, 0, 1).double() - ref).abs().max().item()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for name, fn in cases.items():  # one case at a time: F.conv2d's large temporaries,
        fn()  # freed between calls, slow down the next case's fresh outputs if interleaved
        fn()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    macs = rows * w * co * k * k
    print(
        f"rows {rows}, width {w}, k {k}, c_out {co}, relu {args.relu}: {macs / 1e6:.1f} M "
        f"multiply-adds, 1 thread, median of {args.repeats}; kernel isa "
        f"{kernel.isa()}, max |error| vs float64 {err:.2e}"
    )
    print(f"{'':18} {'ms':>8} {'G MAC/s':>8}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:18} {t * 1e3:8.2f} {macs / t / 1e9:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
