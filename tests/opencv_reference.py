"""OpenCV's own answers for the parity tests: live where OpenCV reads TensorFlow graphs, stored
where it no longer does.

OpenCV 5.1 removed the TensorFlow importer of ``cv2.dnn``, and with it the ``.pb`` models of
``cv2.dnn_superres``. The parity tests (``tests/test_interop_opencv.py``) ask this module for
OpenCV's answers instead of calling OpenCV themselves:

* with an OpenCV that still reads the graphs (≤ 5.0, the one in the development lock), every
  answer is computed live **and** compared with the stored one, so the stored references are
  checked on every run of the suite;
* with OpenCV 5.1+, the stored answer is returned; an input without a stored answer fails
  the test (never skips it).

The stored answers (``tests/fixtures/opencv/references.npz``, with ``references.json``
saying which OpenCV made them, when and how) are written by
``scripts/record_opencv_references.py``, which runs the parity tests with
``SUBPIXEL_RECORD_OPENCV=1`` under OpenCV ≤ 5.0. Answers are keyed by the question (model
file, call, arguments) and a hash of its input array, so they cannot be confused.
"""

from __future__ import annotations

import atexit
import datetime
import functools
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "opencv"
STORE = FIXTURES / "references.npz"
ABOUT = FIXTURES / "references.json"
RECORD = os.environ.get("SUBPIXEL_RECORD_OPENCV") == "1"

_recorded: dict[str, np.ndarray] = {}


class MissingReference(AssertionError):
    """No stored answer for a question, and no OpenCV that can answer it live."""


def cv2_module() -> Any:
    import cv2

    return cv2


def reads_tensorflow_graphs() -> bool:
    """Whether this OpenCV's ``cv2.dnn`` still has the TensorFlow importer (≤ 5.0; 5.1 removed
    ``readNetFromTensorflow``)."""
    return hasattr(cv2_module().dnn, "readNetFromTensorflow")


@functools.cache
def _stored() -> dict[str, np.ndarray]:
    if not STORE.exists():
        return {}
    with np.load(STORE) as data:
        return {name: data[name] for name in data.files}


def _key(kind: str, path: Path, args: tuple[object, ...], value: np.ndarray | None) -> str:
    parts = [kind, path.name, *map(str, args)]
    if value is not None:
        digest = hashlib.sha256(str((value.shape, value.dtype.str)).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        parts.append(digest.hexdigest()[:16])
    return "-".join(parts).replace("/", "_")


class Reference:
    """OpenCV's answers to the parity tests' questions.

    ``stored_only=False``: live from OpenCV where it reads TensorFlow graphs (each answer also
    checked against the stored one), else stored. ``stored_only=True``: always the stored
    answers, as on an OpenCV 5.1+ machine.
    """

    def __init__(self, stored_only: bool = False) -> None:
        self.live = not stored_only and reads_tensorflow_graphs()

    def _answer(self, key: str, live: Callable[[], Any], tolerance: float) -> np.ndarray:
        stored = _stored().get(key)
        if not self.live:
            if stored is None:
                raise MissingReference(
                    f"no stored OpenCV answer for {key} and no live OpenCV that reads "
                    "TensorFlow graphs: run scripts/record_opencv_references.py (OpenCV <= 5.0)"
                )
            return stored
        value = np.asarray(live())
        if RECORD:
            _recorded[key] = value
        elif stored is None:
            raise MissingReference(
                f"no stored OpenCV answer for {key}: run scripts/record_opencv_references.py "
                "(the stored answers must cover every question the tests ask)"
            )
        else:
            assert stored.shape == value.shape and stored.dtype == value.dtype, key
            diff = np.abs(stored.astype(np.float64) - value.astype(np.float64))
            assert diff.max(initial=0) <= tolerance, f"stored {key} differs from live OpenCV"
        return value

    def upsample(self, path: Path, algorithm: str, scale: int, image: np.ndarray) -> np.ndarray:
        """``cv2.dnn_superres``: ``readModel(path)``, ``setModel(algorithm, scale)``,
        ``upsample(image)``."""

        def live() -> np.ndarray:
            sr = cv2_module().dnn_superres.DnnSuperResImpl_create()
            sr.readModel(str(path))
            sr.setModel(algorithm, scale)
            return sr.upsample(image)

        # uint8: OpenCV's float network may round a level differently on another CPU.
        return self._answer(_key("upsample", path, (algorithm, scale), image), live, 1)

    def forward(self, path: Path, blob: np.ndarray) -> np.ndarray:
        """``cv2.dnn.readNetFromTensorflow(path)``'s output for the NCHW float32 ``blob``."""

        def live() -> np.ndarray:
            net = _net(path)
            net.setInput(blob)
            return net.forward()

        return self._answer(_key("forward", path, (), blob), live, 1e-5)

    def layer_blob(self, path: Path, layer: str, index: int = 0) -> np.ndarray:
        """Parameter blob ``index`` of ``layer`` as OpenCV's TensorFlow importer built it."""

        def live() -> np.ndarray:
            return _net(path).getLayer(layer).blobs[index]

        return self._answer(_key("blob", path, (layer, index), None), live, 0)


def _net(path: Path) -> Any:
    cv2 = cv2_module()
    cv2.dnn_superres.DnnSuperResImpl_create()  # registers the DepthToSpace layer the graphs use
    return cv2.dnn.readNetFromTensorflow(str(path))


def _write_recorded() -> None:
    if not _recorded:
        return
    cv2 = cv2_module()
    merged = {**_stored(), **_recorded}
    FIXTURES.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(merged):  # sorted, fixed timestamps: the same answers, same bytes
            array = io.BytesIO()
            np.save(array, merged[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, array.getvalue())
    tmp = STORE.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(STORE)
    about = {
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "recorded": datetime.date.today().isoformat(),
        "command": "python scripts/record_opencv_references.py",
        "answers": len(merged),
        "what": "cv2.dnn_superres upsample outputs, cv2.dnn TensorFlow-graph forward outputs "
        "and layer blobs for the parity tests in tests/test_interop_opencv.py",
    }
    ABOUT.write_text(json.dumps(about, indent=2) + "\n")


if RECORD:
    atexit.register(_write_recorded)
