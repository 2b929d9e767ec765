"""Pieces shared by the benchmark scripts (bench_api, bench_quality_speed, bench_photo,
photo_figure): the synthetic 1080p-output frame, median frames/s of interleaved calls,
``NAME=WEIGHTS`` options and the checks of their weights, and the header line.

The scripts are run as ``python benchmarks/X.py``, so this folder is on ``sys.path``:
``from _common import ...``. They set ``OMP_WAIT_POLICY`` before importing it (it imports
torch).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import torch

#: Input sizes whose output is 1920×1080 (height, width).
SIZES = {2: (540, 960), 3: (360, 640), 4: (270, 480)}


def data_root() -> Path:
    """The shared data folder: ``$SUBPIXEL_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("SUBPIXEL_DATA", "../shared/data"))


def run_header(threads: int) -> str:
    """``"<UTC time>, <CPU>, <threads> threads, torch <version>"``: how a run's header starts."""
    return (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {threads} threads, "
        f"torch {torch.__version__}"
    )


def synthetic_frame(scale: int) -> np.ndarray:
    """A natural-looking uint8 RGB frame of ``SIZES[scale]``: smoothed noise with edges.

    Seeded by ``scale``, so every run and script times the same image.
    """
    h, w = SIZES[scale]
    rng = np.random.default_rng(scale)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(2, 0, 1)[None], scale_factor=8, mode="bicubic"
    )[0].permute(1, 2, 0)[:h, :w]
    return np.ascontiguousarray(big.clamp(0, 255).round().to(torch.uint8).numpy())


def median_fps(fns: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, float]:
    """Calls per second of each of ``fns``: the median over ``rounds`` interleaved rounds.

    ``warmup`` untimed rounds first; every round calls each function once, in order, so that
    background load hits all alike.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: 1.0 / statistics.median(v) for k, v in times.items()}


def add_weights_option(
    p: argparse.ArgumentParser,
    flag: str,
    default: list[str],
    help: str,
    nargs: str = "+",
    metavar: str = "NAME=WEIGHTS",
) -> None:
    """Add the option ``flag`` taking weights specs (``NAME=WEIGHTS`` by default)."""
    p.add_argument(flag, nargs=nargs, default=default, metavar=metavar, help=help)


def parse_specs(specs: list[str], option: str, taken: Collection[str] = ()) -> dict[str, str]:
    """``["NAME=WEIGHTS", ...]`` → ``{NAME: WEIGHTS}`` (a bare ``WEIGHTS`` is its own name).

    Exits, naming ``option``, on an empty name or weights, a repeated name, or one of
    ``taken``.
    """
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, weights = spec.partition("=")
        if not sep:
            name, weights = spec, spec
        if not name or not weights or name in out or name in taken:
            raise SystemExit(f"{option}: expected distinct NAME=WEIGHTS, got {spec!r}")
        out[name] = weights
    return out


def check_weights(weights: str, scale: int) -> str:
    """``weights`` if it can be loaded at ``scale`` (bundled there, or a file), else exit."""
    from subpixel.bundled import find, weights_path
    from subpixel.serialization import WeightsError

    if find(weights) is not None:
        try:
            path = weights_path(weights, scale)
        except WeightsError as e:
            raise SystemExit(f"weights {weights!r} at ×{scale}: {e}") from None
        if not path.exists():
            raise SystemExit(f"{path}: bundled weights missing from this installation")
    elif not Path(weights).exists():
        raise SystemExit(f"weights {weights!r}: neither bundled weights nor an existing file")
    return weights


def resolve_weights(weights: str, scale: int) -> str:
    """``weights`` with ``{scale}`` substituted, checked by :func:`check_weights`."""
    return check_weights(weights.replace("{scale}", str(scale)), scale)


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float on 8-bit levels → ``(H, W, 3)`` uint8 (exact)."""
    levels = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).numpy())
