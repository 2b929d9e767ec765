"""Fast ESPCN inference: fp32 Winograd and int8 VNNI on CPU, and a fused uint8 RGB pipeline.

:func:`optimize_for_inference` turns an ESPCN-like network (convolutions with tanh or ReLU
between them, then one periodic shuffle) into a callable that computes the same function
faster. On CPU:

``precision="fp32"``
    The image is cut into bands of rows; each band runs the whole network (with the rows
    its receptive field needs above and below) on one thread, the bands on
    ``torch.get_num_threads()`` threads at once, so activations stay in cache and no
    operation waits for the other threads. With the compiled kernels (where the CPU has
    AVX2+FMA or AVX-512: :func:`subpixel.fast._kernels.winograd.simd`) everything is channels
    last: the first layer is a direct convolution (``subpixel._conv_first``), the 3×3
    layers run by Winograd F(4×4, 3×3) (``subpixel._winograd``; ReLU fused), the ×2 last
    layer (4 channels) directly (``subpixel._conv3x3``), and a bicubic residual is written
    by the first-layer kernel into the output that the last layer adds to. Without them the
    first layer is an im2col matrix product and the 3×3 layers use NNPACK's Winograd
    F(6×6, 3×3), bundled with PyTorch (oneDNN ``channels_last`` when NNPACK is missing).
    ``tanh`` is
    computed as ``2·sigmoid(2z) − 1``: the factors are folded into the weights and biases of
    the convolutions around it, the constant into the next bias with an exact correction at
    the image border (where zero padding differs), so only an in-place ``sigmoid`` remains,
    which PyTorch vectorises far better than ``tanh``. Results equal the plain model within
    float32 rounding and Winograd's error (~1e-6).
``precision="int8"``
    The convolutions run as oneDNN u8·s8 convolutions (AVX-512 VNNI where the CPU has it),
    weights symmetric per output channel, the last one with a float32 output. tanh
    activations are quantised with the fixed scale that maps [-1, 1] onto 0..255 (no
    calibration needed; the first layer stays float32 and tanh is applied in float). ReLU
    activations get one 8-bit range per channel, folded into the weights around them
    (cross-layer equalisation), calibrated on built-in synthetic images (patterns and
    photograph-like "dead leaves"); oneDNN then fuses ReLU and requantisation, and the
    first layer runs in int8 as well (on Y rounded to 8 bits) unless that costs the
    calibration output more than :data:`FIRST_LAYER_MIN_PSNR`. Weights are rounded to
    8 bits with GPTQ's error feedback on the calibration inputs' correlations, not to the
    nearest code (:func:`~subpixel.fast._int8._gptq`). At the scales in
    :data:`LAST_LAYER_FP32_SCALES` (×2) the last convolution of a ReLU network runs with
    float32 sums on bfloat16 activations and weights (compiled kernel ``subpixel._conv3x3``
    on CPU, else PyTorch).

:class:`FastUpscaler` is the whole Y-channel pipeline on ``uint8`` RGB images: colour
conversion, the network on Y, bicubic chroma, back to RGB and ``uint8``. On CPU, with the
compiled kernel (``subpixel._pipeline``, see :mod:`subpixel.fast._kernels`), the colour
conversion is one pass over the input and the chroma's bicubic interpolation (an exact
polyphase filter), the colour matrix, the pixel shuffle, rounding and the interleaving into
``(H, W, 3)`` one pass over the output, row by row in cache (~2 ms per 1080p frame and
thread instead of ~20). Without it, and off CPU, the same steps are two small matrix
products per band of rows, written straight into the output array. Either reproduces the plain
pipeline (:mod:`subpixel.color`, the model clamped to [0, 1], :func:`subpixel.resize.imresize`
or ``F.interpolate`` bicubic chroma, clamp, round half up) within one grey level.

Threads: the fp32 network reads ``torch.get_num_threads()`` at every call and runs its
bands on that many worker threads of one intra-op thread each; results do not depend on
the thread count. Nothing changes the host process unless asked: :func:`tune_process`
(called by the ``subpixel`` command line) raises glibc's malloc thresholds
(:func:`tune_malloc`) and sets NNPACK up (its pool, sized by PyTorch at its first use in a
process, created with one thread so that the bands' calls run side by side); without it the
fp32 network uses oneDNN where the compiled kernels are missing.

The implementation, one concept per private module: ``_net`` (the model parsed into
layers, the :class:`FastESPCN` base class), ``_process`` (:func:`tune_process`, opt-in
process-wide settings), ``_bands`` (bands of rows and their worker threads), ``_fp32``,
``_calibration`` and ``_int8`` (the CPU networks), ``_opencv`` (:class:`OpenCVUpscaler`:
OpenCV ``dnn_superres``'s uint8 steps around the network, for imported OpenCV models, in
the compiled ``subpixel._opencv_levels``), ``_torch`` (other devices), ``_optimize``
(:func:`optimize_for_inference`), ``_polyphase`` (:func:`polyphase_taps`) and
``_upscaler`` (:class:`FastUpscaler`).

Example:
    >>> import numpy as np, torch
    >>> from subpixel.models.espcn import ESPCN
    >>> model = ESPCN(scale=3).eval()
    >>> fast = optimize_for_inference(model)
    >>> y = torch.rand(1, 1, 12, 10)
    >>> bool((fast(y) - model(y)).abs().max() < 1e-4)
    True
    >>> up = FastUpscaler(model)
    >>> up(np.zeros((12, 10, 3), np.uint8)).shape
    (36, 30, 3)
"""

from __future__ import annotations

from subpixel.fast._int8 import FIRST_LAYER_MIN_PSNR, LAST_LAYER_FP32_SCALES
from subpixel.fast._net import FastESPCN
from subpixel.fast._opencv import OpenCVUpscaler, opencv_kernel
from subpixel.fast._optimize import PRECISIONS, optimize_for_inference
from subpixel.fast._polyphase import polyphase_taps
from subpixel.fast._process import malloc_tuned, nnpack_enabled, tune_malloc, tune_process
from subpixel.fast._upscaler import CHROMA_MODES, COLOR_MODES, FastUpscaler

__all__ = [
    "CHROMA_MODES",
    "COLOR_MODES",
    "FIRST_LAYER_MIN_PSNR",
    "LAST_LAYER_FP32_SCALES",
    "PRECISIONS",
    "FastESPCN",
    "FastUpscaler",
    "OpenCVUpscaler",
    "malloc_tuned",
    "nnpack_enabled",
    "opencv_kernel",
    "optimize_for_inference",
    "polyphase_taps",
    "tune_malloc",
    "tune_process",
]
