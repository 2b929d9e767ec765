"""Import an OpenCV dnn_superres ESPCN/FSRCNN TensorFlow graph (.pb) as a subpixel weights file.

The architecture and scale are read from the graph (ESPCN_x{2,3,4}.pb, FSRCNN_x*.pb and
FSRCNN-small_x*.pb are supported). The .safetensors file records the model name, its
configuration, a model card (source file and its SHA-256) and the OpenCV pre/post-processing
(uint8 YCrCb, bilinear chroma), so `subpixel eval` and `subpixel upscale` use it like any
other weights file. --verify runs the imported model through OpenCV's pipeline and compares
it with cv2.dnn_superres on a random image (needs 'subpixel[opencv]').

examples:
  subpixel import-opencv ESPCN_x3.pb -o espcn_x3.safetensors
  subpixel import-opencv FSRCNN_x2.pb -o fsrcnn_x2.safetensors --upsampler transposed
  subpixel import-opencv FSRCNN-small_x4.pb -o fsrcnn_small_x4.safetensors --verify
  subpixel eval --weights espcn_x3.safetensors --scale 3 --data Set5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from subpixel.cli import CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", metavar="MODEL.pb", help="an OpenCV dnn_superres TensorFlow graph")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="file to write")
    p.add_argument(
        "--upsampler",
        choices=("subpixel", "transposed"),
        default="subpixel",
        help="FSRCNN's last layer as convolution + shuffle (default) or ConvTranspose2d; "
        "both compute the same function",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare with cv2.dnn_superres on a random 48x64 image (needs OpenCV)",
    )


def _verify(graph: Path, imported: object) -> int:
    """Largest difference in grey levels between OpenCV and our pipeline on a random image."""
    try:
        import cv2
    except ImportError as exc:
        raise CliError("--verify needs OpenCV: pip install 'subpixel[opencv]'") from exc
    import numpy as np

    from subpixel.interop.opencv import ImportedModel
    from subpixel.interop.opencv_pipeline import opencv_upsample

    assert isinstance(imported, ImportedModel)
    sr = cv2.dnn_superres.DnnSuperResImpl_create()  # type: ignore[attr-defined]
    try:
        sr.readModel(str(graph))
    except cv2.error as exc:
        raise CliError(
            f"{graph}: imported, but --verify needs an OpenCV that reads TensorFlow graphs "
            f"(<= 5.0; this is {cv2.__version__}): {str(exc).strip().splitlines()[-1]}"
        ) from exc
    sr.setModel(imported.algorithm, imported.scale)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ref = sr.upsample(image)
    ours = opencv_upsample(imported.model, image)
    return int(np.abs(ref.astype(np.int16) - ours.astype(np.int16)).max())


def run(args: argparse.Namespace) -> int:
    from subpixel.interop.opencv import import_opencv

    graph, out = Path(args.graph), Path(args.output)
    if out.suffix != ".safetensors":
        raise CliError(f"{out}: the output must be a .safetensors file")
    if out.exists() and not args.overwrite:
        raise CliError(f"{out}: exists (use --overwrite to replace it)")
    if not out.parent.is_dir():
        raise CliError(f"{out}: folder {out.parent} does not exist")
    imported = import_opencv(graph, upsampler=args.upsampler)
    imported.save(out)
    params = sum(p.numel() for p in imported.model.parameters())
    print(
        f"{out}: {imported.name} x{imported.scale}, {params} parameters, "
        f"config {json.dumps(imported.config, sort_keys=True)}"
    )
    if args.verify:
        diff = _verify(graph, imported)
        print(f"max difference vs cv2.dnn_superres on a random image: {diff} grey level(s)")
        if diff > 1:
            raise CliError(f"{graph}: output differs from OpenCV by {diff} grey levels (> 1)")
    return 0
