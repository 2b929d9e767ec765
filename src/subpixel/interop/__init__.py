"""Interoperability: OpenCV ``dnn_superres`` / TensorFlow import, ONNX export.

Optional dependencies are imported lazily: the import needs none (the ``.pb`` graph is read
by a built-in protobuf reader), ONNX export needs ``pip install 'subpixel[onnx]'``.

Example:
    >>> from subpixel.interop import load_opencv, to_onnx
    >>> callable(load_opencv) and callable(to_onnx)
    True
"""

from subpixel.interop.onnx_export import to_onnx
from subpixel.interop.opencv import ImportedModel, import_opencv, load_opencv
from subpixel.interop.opencv_onnx import to_dnn_superres
from subpixel.interop.opencv_pipeline import opencv_upsample

__all__ = [
    "ImportedModel",
    "import_opencv",
    "load_opencv",
    "opencv_upsample",
    "to_dnn_superres",
    "to_onnx",
]
