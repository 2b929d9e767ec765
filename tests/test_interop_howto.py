"""docs/interop.md section 1, followed literally on a synthetic Keras-style model.

The "TensorFlow model" is numpy arrays (kernels HWIO, biases) with a numpy forward pass in
NHWC: "same" cross-correlation, tanh, and ``depth_to_space`` written out from TensorFlow's
definition. Nothing of subpixel is used in the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from subpixel import convert_order
from subpixel.models.espcn import ESPCN

# --- the TensorFlow reference, in numpy ------------------------------------------------------


def tf_conv2d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``tf.nn.conv2d(x, kernel, 1, "SAME") + bias``: NHWC input, HWIO kernel (float64)."""
    kh, kw, _, c_out = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2  # TF puts the odd pixel at the bottom/right
    xp = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    n, h, w, _ = x.shape
    out = np.zeros((n, h, w, c_out))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + w, :], kernel[i, j])
    return out + bias


def tf_depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """``tf.nn.depth_to_space`` (NHWC) from its definition: out[n, y·r+i, x·r+j, c] =
    in[n, y, x, (i·r + j)·C + c]."""
    n, h, w, depth = x.shape
    c = depth // (r * r)
    out = np.zeros((n, h * r, w * r, c))
    for i in range(r):
        for j in range(r):
            for ch in range(c):
                out[:, i::r, j::r, ch] = x[:, :, :, (i * r + j) * c + ch]
    return out


def keras_espcn(x: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]], r: int) -> np.ndarray:
    """The Keras model of the how-to: conv5(64)-tanh-conv3(32)-tanh-conv3(C·r²)-d2s."""
    h = np.tanh(tf_conv2d_same(x, *weights[0]))
    h = np.tanh(tf_conv2d_same(h, *weights[1]))
    return tf_depth_to_space(tf_conv2d_same(h, *weights[2]), r)


def make_weights(c: int, r: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    shapes = [(5, 5, c, 64), (3, 3, 64, 32), (3, 3, 32, c * r * r)]
    return [
        (
            rng.normal(0, (1 / np.prod(s[:3])) ** 0.5, s).astype(np.float32),
            rng.normal(0, 0.1, s[3]).astype(np.float32),
        )
        for s in shapes
    ]


# --- the how-to, step by step ------------------------------------------------------------------


@pytest.mark.parametrize(("C", "r"), [(1, 3), (3, 2), (3, 3), (2, 4)])
def test_howto_port_matches_keras_reference(C: int, r: int) -> None:
    rng = np.random.default_rng(C * 10 + r)
    weights = make_weights(C, r, rng)
    x_nhwc = rng.random((2, 9, 11, C)).astype(np.float32)

    # Step 1: build the PyTorch network.
    model = ESPCN(
        scale=r, channels=C, features=(64, 32), kernels=(5, 3, 3), activation="tanh", order="chw"
    ).eval()

    # Step 2: copy the kernels, HWIO -> OIHW.
    convs = [model.features[0], model.features[2], model.upsample]
    with torch.no_grad():
        for conv, (kernel, bias) in zip(convs, weights, strict=True):
            conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
            conv.bias.copy_(torch.from_numpy(bias))

    # Step 3: reorder the last convolution's output channels, TensorFlow -> PyTorch order.
    with torch.no_grad():
        up = model.upsample
        up.weight.copy_(convert_order(up.weight, r, src="tensorflow", dst="torch"))
        up.bias.copy_(convert_order(up.bias, r, src="tensorflow", dst="torch"))

    # Step 4: feed NCHW.
    x_nchw = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    with torch.no_grad():
        y_nhwc = model(x_nchw).permute(0, 2, 3, 1).numpy()

    # Step 5: check.
    ref = keras_espcn(x_nhwc.astype(np.float64), weights, r)
    np.testing.assert_allclose(y_nhwc, ref, atol=1e-5)
    # The result is PyTorch's order: the model's shuffle is torch.nn.PixelShuffle.
    with torch.no_grad():
        feats = model.upsample(model.features(x_nchw))
        torch.testing.assert_close(model(x_nchw), F.pixel_shuffle(feats, r))


@pytest.mark.parametrize(("C", "r"), [(3, 2), (2, 3)])
def test_howto_skipping_step3_scrambles_blocks_but_tensorflow_order_works(C: int, r: int) -> None:
    """Without step 3 the result is wrong for C > 1; order="tensorflow" is the alternative."""
    rng = np.random.default_rng(7)
    weights = make_weights(C, r, rng)
    x_nhwc = rng.random((1, 6, 7, C)).astype(np.float32)
    ref = keras_espcn(x_nhwc.astype(np.float64), weights, r)
    x_nchw = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    for order, ok in (("chw", False), ("tensorflow", True)):
        model = ESPCN(scale=r, channels=C, kernels=(5, 3, 3), activation="tanh", order=order)
        convs = [model.features[0], model.features[2], model.upsample]
        with torch.no_grad():
            for conv, (kernel, bias) in zip(convs, weights, strict=True):
                conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
                conv.bias.copy_(torch.from_numpy(bias))
            y = model(x_nchw).permute(0, 2, 3, 1).numpy()
        assert np.allclose(y, ref, atol=1e-5) == ok, order


# --- the "things to watch" table ---------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4])
def test_howto_even_kernel_same_padding(k: int) -> None:
    """Keras "same" with an even kernel = F.pad(p, p + 1) then padding 0, p = (k - 2) // 2."""
    rng = np.random.default_rng(k)
    kernel = rng.normal(size=(k, k, 2, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    x = rng.random((1, 7, 8, 2)).astype(np.float32)
    ref = tf_conv2d_same(x.astype(np.float64), kernel, bias)
    p = (k - 2) // 2
    xt = F.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (p, p + 1, p, p + 1))
    w = torch.from_numpy(kernel).permute(3, 2, 0, 1)
    y = F.conv2d(xt, w, torch.from_numpy(bias)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)


def tf_conv2d_transpose_same(x: np.ndarray, kernel: np.ndarray, s: int) -> np.ndarray:
    """``tf.nn.conv2d_transpose(x, kernel, out=(H·s, W·s), s, "SAME")``: the adjoint of the
    stride-``s`` SAME convolution of an ``H·s × W·s`` image; kernel ``(kh, kw, out, in)``."""
    n, h, w, _ = x.shape
    kh, kw, c_out, _ = kernel.shape
    big_h, big_w = h * s, w * s
    top = max((h - 1) * s + kh - big_h, 0) // 2
    left = max((w - 1) * s + kw - big_w, 0) // 2
    out = np.zeros((n, big_h, big_w, c_out))
    for y in range(h):
        for xx in range(w):
            for i in range(kh):
                for j in range(kw):
                    oy, ox = y * s - top + i, xx * s - left + j
                    if 0 <= oy < big_h and 0 <= ox < big_w:
                        out[:, oy, ox, :] += x[:, y, xx, :] @ kernel[i, j].T
    return out


@pytest.mark.parametrize(("k", "s"), [(4, 2), (3, 2), (9, 3), (5, 2), (3, 3)])
def test_howto_conv2d_transpose(k: int, s: int) -> None:
    """Kernel (kh, kw, out, in) -> permute(3, 2, 0, 1); padding (k - s) // 2; odd k - s:
    drop the last row and column."""
    rng = np.random.default_rng(k * s)
    kernel = rng.normal(size=(k, k, 2, 3)).astype(np.float32)
    x = rng.random((1, 4, 5, 3)).astype(np.float32)
    ref = tf_conv2d_transpose_same(x.astype(np.float64), kernel.astype(np.float64), s)
    w = torch.from_numpy(kernel).permute(3, 2, 0, 1)
    y = F.conv_transpose2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), w, stride=s, padding=(k - s) // 2
    )
    y = y[..., : 4 * s, : 5 * s].permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
