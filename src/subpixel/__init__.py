"""subpixel: sub-pixel convolution in every channel order, and real-time super-resolution.

The public API is listed in ``__all__``. Training, evaluation and the command-line tool
live in their own modules and are not imported here.
"""

from subpixel.layers import (
    Blur,
    PixelShuffle,
    PixelUnshuffle,
    SubPixelConv1d,
    SubPixelConv2d,
    SubPixelConv3d,
)
from subpixel.ops import convert_order, order_permutation, pixel_shuffle, pixel_unshuffle

__version__ = "0.1.0"

__all__ = [
    "Blur",
    "PixelShuffle",
    "PixelUnshuffle",
    "SubPixelConv1d",
    "SubPixelConv2d",
    "SubPixelConv3d",
    "__version__",
    "convert_order",
    "order_permutation",
    "pixel_shuffle",
    "pixel_unshuffle",
    "upscale",
]


def __getattr__(name: str) -> object:
    # Lazy: `import subpixel` must not import the image/video stack. `subpixel.upscale` is
    # a callable module, so `subpixel.upscale(image, ...)` calls subpixel.upscale.upscale.
    if name == "upscale":
        import importlib

        return importlib.import_module("subpixel.upscale")
    raise AttributeError(f"module 'subpixel' has no attribute {name!r}")
