"""subpixel for Keras 3: the same operators, layers and weights on TensorFlow, JAX and PyTorch.

Choose the backend before Keras is imported (``KERAS_BACKEND=tensorflow|jax|torch``);
everything here goes through ``keras.ops`` and gives the same result on each. ``import
subpixel`` itself never imports Keras: only this package does.

Modules: :mod:`~subpixel.keras.ops` (functional shuffle, unshuffle, order conversion),
:mod:`~subpixel.keras.layers`, :mod:`~subpixel.keras.initializers` (ICNR),
:mod:`~subpixel.keras.resize` (PyTorch's bicubic upsampling), :mod:`~subpixel.keras.models`
(ESPCN with the bundled weights), :mod:`~subpixel.keras.weights` (to and from PyTorch),
:mod:`~subpixel.keras.convert` (``Conv2DTranspose`` -> sub-pixel) and
:mod:`~subpixel.keras.tflite` (TensorFlow Lite export; TensorFlow backend only, not imported
here).

Example:
    >>> import numpy as np
    >>> import subpixel.keras as spk
    >>> tuple(spk.PixelShuffle(2, order="tensorflow")(np.zeros((1, 4, 4, 12))).shape)
    (1, 8, 8, 3)
"""

from subpixel.keras import ops
from subpixel.keras.initializers import ICNR
from subpixel.keras.layers import (
    Blur,
    PixelShuffle,
    PixelUnshuffle,
    SubPixelConv1D,
    SubPixelConv2D,
    SubPixelConv3D,
)
from subpixel.keras.ops import convert_order, pixel_shuffle, pixel_unshuffle

__all__ = [
    "ICNR",
    "Blur",
    "PixelShuffle",
    "PixelUnshuffle",
    "SubPixelConv1D",
    "SubPixelConv2D",
    "SubPixelConv3D",
    "convert_order",
    "ops",
    "pixel_shuffle",
    "pixel_unshuffle",
]
