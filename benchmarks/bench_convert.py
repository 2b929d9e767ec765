"""Transposed convolution vs its exact sub-pixel form: forward and forward+backward time.

Times typical GAN-generator and decoder up-sampling layers as ``nn.ConvTranspose*d`` and as
the module :func:`subpixel.convert.transposed_to_subpixel` makes of them (conv -> shuffle ->
crop), checks that both give the same output, and prints a ratio table
(``ratio = transposed time / sub-pixel time``: above 1 the sub-pixel form is faster).

Run:
    .venv/bin/python benchmarks/bench_convert.py                 # CPU, 2 threads
    .venv/bin/python benchmarks/bench_convert.py --device cuda   # when a GPU is present
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import benchmark

from subpixel.convert import transposed_to_subpixel


@dataclass(frozen=True)
class Case:
    """One layer to time: its name, the transposed convolution and the input's spatial size."""

    name: str
    make: Callable[[], nn.Module]
    c_in: int
    size: tuple[int, ...]


CASES: tuple[Case, ...] = (
    Case("DCGAN 512->256, k4 s2 p1", lambda: nn.ConvTranspose2d(512, 256, 4, 2, 1), 512, (8, 8)),
    Case("DCGAN 256->128, k4 s2 p1", lambda: nn.ConvTranspose2d(256, 128, 4, 2, 1), 256, (16, 16)),
    Case("DCGAN 128->64, k4 s2 p1", lambda: nn.ConvTranspose2d(128, 64, 4, 2, 1), 128, (32, 32)),
    Case("DCGAN 64->3, k4 s2 p1", lambda: nn.ConvTranspose2d(64, 3, 4, 2, 1), 64, (64, 64)),
    Case("U-Net 128->64, k2 s2", lambda: nn.ConvTranspose2d(128, 64, 2, 2), 128, (32, 32)),
    Case(
        "decoder 64->64, k3 s2 p1 op1",
        lambda: nn.ConvTranspose2d(64, 64, 3, 2, 1, 1),
        64,
        (32, 32),
    ),
    Case("3-D 64->32, k4 s2 p1", lambda: nn.ConvTranspose3d(64, 32, 4, 2, 1), 64, (8, 8, 8)),
    Case("3-D U-Net 64->32, k2 s2", lambda: nn.ConvTranspose3d(64, 32, 2, 2), 64, (16, 16, 16)),
)


@dataclass(frozen=True)
class Row:
    name: str
    shape: str
    fwd: tuple[float, float]  # (transposed, sub-pixel) seconds
    fwd_bwd: tuple[float, float]
    rel_err: float


def _time(fn: Callable[[], object], min_run_time: float, device: torch.device) -> float:
    """Median seconds per call (torch.utils.benchmark synchronises CUDA)."""
    fn()  # warm-up (also lets oneDNN/cuDNN pick kernels)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def run_case(case: Case, batch: int, device: torch.device, min_run_time: float) -> Row:
    """Time one layer in both forms, forward and forward+backward."""
    ref = case.make().to(device)
    sub = transposed_to_subpixel(ref)  # type: ignore[arg-type]
    x = torch.randn(batch, case.c_in, *case.size, device=device, requires_grad=True)
    with torch.no_grad():
        y_ref, y_sub = ref(x), sub(x)
    rel = ((y_sub - y_ref).abs().max() / y_ref.abs().max()).item()
    grad = torch.randn_like(y_ref)

    def forward(m: nn.Module) -> Callable[[], object]:
        def fn() -> object:
            with torch.no_grad():
                return m(x)

        return fn

    def forward_backward(m: nn.Module) -> Callable[[], object]:
        inputs = [x, *m.parameters()]

        def fn() -> object:
            return torch.autograd.grad(m(x), inputs, grad)

        return fn

    fwd = tuple(_time(forward(m), min_run_time, device) for m in (ref, sub))
    fb = tuple(_time(forward_backward(m), min_run_time, device) for m in (ref, sub))
    shape = f"{tuple(x.shape)} -> {tuple(y_ref.shape[1:])}"
    return Row(case.name, shape, fwd, fb, rel)  # type: ignore[arg-type]


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table: times in ms and the ratio transposed / sub-pixel."""
    head = (
        "| layer | input -> output (C, *S) | fwd transposed ms | fwd sub-pixel ms | fwd ratio "
        "| fwd+bwd transposed ms | fwd+bwd sub-pixel ms | fwd+bwd ratio | max rel. diff |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.shape} | {r.fwd[0] * 1e3:.2f} | {r.fwd[1] * 1e3:.2f} | "
            f"{r.fwd[0] / r.fwd[1]:.2f} | {r.fwd_bwd[0] * 1e3:.2f} | {r.fwd_bwd[1] * 1e3:.2f} | "
            f"{r.fwd_bwd[0] / r.fwd_bwd[1]:.2f} | {r.rel_err:.1e} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument(
        "--min-time", type=float, default=0.4, help="seconds of timing per measurement"
    )
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda given but CUDA is not available")
    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {args.threads} threads"
    )
    print(f"torch {torch.__version__}, {what}, batch {args.batch}, float32")
    rows = [
        run_case(case, args.batch, device, args.min_time)
        for case in CASES
        if args.only.lower() in case.name.lower()
    ]
    print(format_table(rows))
    print("ratio = transposed time / sub-pixel time (> 1: the sub-pixel form is faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
