"""Record OpenCV's answers for the parity tests (tests/fixtures/opencv/references.npz).

OpenCV 5.1 removed the TensorFlow importer that ``cv2.dnn_superres`` needs for its ``.pb``
models, so the parity tests keep OpenCV's answers as stored fixtures (see
``tests/opencv_reference.py``). This script runs those tests against live OpenCV with
``SUBPIXEL_RECORD_OPENCV=1``, which writes every answer they asked for, with the OpenCV
version and date in ``references.json``. Run it under an OpenCV ≤ 5.0 (the development lock's):

    SUBPIXEL_DATA=../shared/data .venv/bin/python scripts/record_opencv_references.py

then run the suite and commit both files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import cv2

    if not hasattr(cv2.dnn, "readNetFromTensorflow"):
        print(f"OpenCV {cv2.__version__} cannot read TensorFlow graphs: use OpenCV <= 5.0")
        return 1
    if not os.environ.get("SUBPIXEL_DATA"):
        print("set SUBPIXEL_DATA to the shared data folder (the tests read its .pb models)")
        return 1
    env = {**os.environ, "SUBPIXEL_RECORD_OPENCV": "1"}
    test = str(ROOT / "tests" / "test_interop_opencv.py")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
