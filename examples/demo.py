"""`make demo`: upscale the example photo ×3 with the bundled ESPCN weights.

Writes into demo/ (next to this folder, git-ignored):

* ``coffee_x3.png`` and ``coffee_x3.compare.png``: examples/demo.png (300×200) upscaled to
  900×600, and input | bicubic | ESPCN side by side;
* ``coffee_lr.png``, ``coffee_lr_x3.png`` and ``coffee_lr_x3.compare.png``: the photo
  shrunk ×3 the way SR benchmarks do (MATLAB bicubic), upscaled back, and compared with
  the original, with PSNR on Y for bicubic and ESPCN.

Run ``python examples/demo.py --help`` for options (``--weights`` takes any .safetensors).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE = HERE / "demo.png"


def _psnr_pair(
    sr_path: Path, bicubic_scale: int, lr_path: Path, hr_path: Path
) -> tuple[float, float]:
    """PSNR (Y, SR protocol) of the ESPCN output and of MATLAB bicubic against the original."""
    from subpixel.data import load_image, quantize
    from subpixel.metrics import psnr
    from subpixel.resize import imresize

    hr = load_image(hr_path).double()
    sr = load_image(sr_path).double()
    bic = quantize(imresize(load_image(lr_path).double(), float(bicubic_scale)))
    h, w = min(hr.shape[1], sr.shape[1]), min(hr.shape[2], sr.shape[2])
    crop = (slice(None), slice(0, h), slice(0, w))
    values = [psnr(x[crop], hr[crop], shave=bicubic_scale) for x in (sr, bic)]
    return values[0], values[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        default="DEFAULT",
        help="bundled weights (DEFAULT, photo...) or a .safetensors file",
    )
    parser.add_argument("--scale", type=int, default=3, choices=(2, 3, 4))
    parser.add_argument("--out", type=Path, default=HERE.parent / "demo", help="output folder")
    args = parser.parse_args(argv)

    from subpixel.bundled import find, weights_path
    from subpixel.cli import main as subpixel

    if find(args.weights) is not None:
        bundled = weights_path(args.weights, args.scale)
        if not bundled.exists():
            print(
                f"demo: the bundled weights {bundled.name} are missing (expected at {bundled}); "
                "they are produced by training (see README), or run with --weights PATH",
                file=sys.stderr,
            )
            return 1
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    s = args.scale
    common = ["--weights", args.weights, "--scale", str(s), "--overwrite", "--no-progress"]

    start = time.perf_counter()
    first = ["upscale", str(IMAGE), "-o", str(out / f"coffee_x{s}.png"), "--compare", *common]
    print("$ subpixel " + shlex.join(first))
    if subpixel(first) != 0:
        return 1

    import torch
    from PIL import Image

    from subpixel.data import degrade, load_image

    lr = degrade(load_image(IMAGE).double(), s)
    lr_path = out / "coffee_lr.png"
    Image.fromarray(lr.mul(255).round().byte().permute(1, 2, 0).numpy()).save(lr_path)
    sr_path = out / f"coffee_lr_x{s}.png"
    second = ["upscale", str(lr_path), "-o", str(sr_path), "--compare", "--reference", str(IMAGE)]
    print("$ subpixel " + shlex.join([*second, *common]))
    if subpixel([*second, *common]) != 0:
        return 1
    with torch.no_grad():
        sr_db, bic_db = _psnr_pair(sr_path, s, lr_path, IMAGE)
    seconds = time.perf_counter() - start
    print(f"\nPSNR (Y) against the original: ESPCN {sr_db:.2f} dB, bicubic {bic_db:.2f} dB")
    print(f"results in {out}/ ({seconds:.1f} s):")
    for name in sorted(p.name for p in out.iterdir() if p.suffix == ".png"):
        print(f"  {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
