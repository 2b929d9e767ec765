"""Run subpixel's ONNX exports in OpenCV >= 5.1, in a separate interpreter (needs numpy + cv2 only).

Used by ``tests/test_opencv51.py`` through ``SUBPIXEL_OPENCV51_PYTHON``. Two routes:

* ``superres``: ``cv2.dnn_superres.DnnSuperResImpl`` on a file written by
  ``subpixel export --for dnn_superres`` (input ``(1, H, W, 1)``, output ``(1, 1, sH, sW)``);
* ``net``: ``cv2.dnn.readNetFromONNX`` on a plain export (input ``(1, 1, H, W)``) with
  ``dnn_superres``'s own YCrCb pre- and post-processing written out in Python (the recipe of
  docs/interop.md).

usage:
  python opencv51_runner.py --version
  python opencv51_runner.py ROUTE MODEL.onnx ALGORITHM SCALE OUTDIR IMAGE.npy [IMAGE.npy ...]

Each ``IMAGE.npy`` (uint8, ``(H, W, 3)`` BGR or ``(H, W)`` grey) gives ``OUTDIR/IMAGE.npy``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

_INV255 = np.float32(1.0 / 255.0)


def to_u8(x: np.ndarray) -> np.ndarray:
    """``Mat.convertTo(CV_8U, 255)``: times 255 in float32, round half to even, saturate."""
    return np.clip(np.rint(x.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)


def upsample_net(net: cv2.dnn.Net, image: np.ndarray, scale: int) -> np.ndarray:
    """What ``DnnSuperResImpl.upsample`` does, around a network read with ``readNetFromONNX``.

    The network takes the Y plane ``(1, 1, H, W)`` in [0, 1] and gives ``(1, 1, sH, sW)``.
    """
    if image.ndim == 2:  # grey: the network on the levels / 255, no colour conversion
        net.setInput((image.astype(np.float32) * _INV255)[None, None])
        return to_u8(net.forward()[0, 0])
    ycc = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb).astype(np.float32) * _INV255
    net.setInput(np.ascontiguousarray(ycc[..., 0])[None, None])
    y = net.forward()[0, 0]
    cr, cb = (
        cv2.resize(np.ascontiguousarray(ycc[..., i]), None, fx=scale, fy=scale) for i in (1, 2)
    )
    return cv2.cvtColor(to_u8(cv2.merge([y, cr, cb])), cv2.COLOR_YCrCb2BGR)


def main(argv: list[str]) -> int:
    """Parse ``argv`` (see the module docstring) and write one ``.npy`` per image."""
    if argv == ["--version"]:
        print(cv2.__version__)
        return 0
    if len(argv) < 6 or argv[0] not in ("superres", "net"):
        print(__doc__, file=sys.stderr)
        return 2
    route, model, algorithm, scale_text, outdir = argv[:5]
    scale = int(scale_text)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if route == "superres":
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(model)
        sr.setModel(algorithm, scale)
    else:
        net = cv2.dnn.readNetFromONNX(model)
    for name in argv[5:]:
        image = np.load(name)
        result = sr.upsample(image) if route == "superres" else upsample_net(net, image, scale)
        np.save(out / Path(name).name, np.asarray(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
