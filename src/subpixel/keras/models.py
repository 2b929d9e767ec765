"""ESPCN for Keras 3, with the bundled PyTorch weights converted (not retrained).

:class:`ESPCN` is the Keras twin of :class:`subpixel.models.espcn.ESPCN`: the same options
(any number of hidden layers and kernel sizes, the four activations, an output activation,
the bicubic residual), channels last ``(N, H, W, C)``, and TensorFlow's shuffle order
``"hwc"`` so that it exports to TensorFlow Lite as ``CONV_2D``s and one ``DEPTH_TO_SPACE``.
:func:`espcn` builds it, optionally with the weights of a subpixel ``.safetensors`` file
(``"DEFAULT"``: the bundled ones): kernels go from ``(O, I, kh, kw)`` to ``(kh, kw, I, O)``
and the last convolution's output channels from the file's order to ``"hwc"``
(:mod:`subpixel.keras.weights`). Its outputs equal the PyTorch model's to float32 rounding.

Example:
    >>> import numpy as np
    >>> from subpixel.keras.models import espcn
    >>> model = espcn(3, weights="espcn")
    >>> model.get_config()["residual"], model.scale
    ('bicubic', 3)
    >>> tuple(model(np.zeros((1, 8, 10, 1), "float32")).shape)
    (1, 24, 30, 1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from subpixel.keras.layers import PixelShuffle
from subpixel.keras.resize import BicubicUpsampling2D
from subpixel.models.espcn import check_config
from subpixel.serialization import WeightsError, load_weights

__all__ = ["ACTIVATIONS", "ESPCN", "espcn"]

#: Activation names, as in :class:`subpixel.models.espcn.ESPCN`.
ACTIVATIONS = ("tanh", "relu", "prelu", "leaky_relu")


def _activation(name: str, layer_name: str) -> keras.layers.Layer:
    """The Keras layer computing PyTorch's activation of that name (same defaults)."""
    if name == "tanh":
        return keras.layers.Activation("tanh", name=layer_name)
    if name == "relu":
        return keras.layers.ReLU(name=layer_name)
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01, name=layer_name)  # torch's default
    # nn.PReLU(): one slope shared by all channels, initialised to 0.25
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.25),
        shared_axes=[1, 2, 3],
        name=layer_name,
    )


def _check(
    scale: int,
    features: Sequence[int],
    kernels: Sequence[int],
    activation: str,
    output_activation: str | None,
    residual: str | None,
) -> None:
    """The PyTorch ESPCN's checks (:func:`subpixel.models.espcn.check_config`), bools refused."""
    if isinstance(scale, bool):
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    check_config(scale, features, kernels, activation, output_activation, residual)


@keras.saving.register_keras_serializable(package="subpixel")
class ESPCN(keras.Model):
    """The efficient sub-pixel CNN: ``(N, H, W, C)`` in [0, 1] to ``(N, s·H, s·W, C)``.

    A functional model. Layer names follow the PyTorch module's parameter names
    (``features_0``, ``features_1``, ..., ``upsample``, ``shuffle``, ``output``,
    ``residual``), which is how :mod:`subpixel.keras.weights` maps the weights.

    Args:
        scale: upscaling factor.
        channels: image channels in and out (1: the Y channel).
        features: widths of the hidden layers.
        kernels: kernel sizes (odd), one more than ``features``.
        activation: ``"tanh"``, ``"relu"``, ``"prelu"`` or ``"leaky_relu"``.
        output_activation: ``None`` or an activation name applied after the shuffle.
        residual: ``None`` or ``"bicubic"`` (add PyTorch's bicubic upsampling of the input,
            :class:`subpixel.keras.resize.BicubicUpsampling2D`).
        name: the model's name.

    Unlike the PyTorch class there is no ``order``: the model always shuffles in ``"hwc"``;
    the PyTorch file's order is applied when weights are converted.

    Example:
        >>> import numpy as np
        >>> m = ESPCN(2, features=(16, 16, 8), kernels=(3, 3, 3, 3), activation="prelu")
        >>> tuple(m(np.zeros((1, 5, 6, 1), "float32")).shape)
        (1, 10, 12, 1)
        >>> [layer.name for layer in m.layers][1:4]
        ['features_0', 'features_1', 'features_2']
    """

    def __init__(
        self,
        scale: int = 3,
        *,
        channels: int = 1,
        features: Sequence[int] = (64, 32),
        kernels: Sequence[int] = (5, 3, 3),
        activation: str = "tanh",
        output_activation: str | None = None,
        residual: str | None = None,
        name: str = "espcn",
        **kwargs: Any,
    ) -> None:
        features, kernels = tuple(features), tuple(kernels)
        _check(scale, features, kernels, activation, output_activation, residual)
        inputs = keras.Input(shape=(None, None, channels), name="lr")
        x = inputs
        widths = [channels, *features]
        for i, (c_out, k) in enumerate(zip(widths[1:], kernels[:-1], strict=True)):
            fan_out = c_out * k * k  # PyTorch ESPCN's initialisation
            x = keras.layers.Conv2D(
                c_out,
                k,
                padding="same",
                kernel_initializer=keras.initializers.RandomNormal(0.0, (2.0 / fan_out) ** 0.5),
                name=f"features_{2 * i}",
            )(x)
            x = _activation(activation, f"features_{2 * i + 1}")(x)
        x = keras.layers.Conv2D(
            channels * scale * scale,
            kernels[-1],
            padding="same",
            kernel_initializer=keras.initializers.RandomNormal(0.0, 1e-3),
            name="upsample",
        )(x)
        x = PixelShuffle(scale, order="hwc", data_format="channels_last", name="shuffle")(x)
        if output_activation is not None:
            x = _activation(output_activation, "output")(x)
        if residual == "bicubic":
            up = BicubicUpsampling2D(scale, data_format="channels_last", name="residual")(inputs)
            x = keras.layers.Add(name="add_residual")([x, up])
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)
        self.scale = scale
        self.channels = channels
        self._espcn_config: dict[str, Any] = {
            "scale": scale,
            "channels": channels,
            "features": list(features),
            "kernels": list(kernels),
            "activation": activation,
            "output_activation": output_activation,
            "residual": residual,
        }

    def get_config(self) -> dict[str, Any]:
        return {**self._espcn_config, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> ESPCN:
        return cls(**config)


def _weights_path(weights: str | os.PathLike[str], scale: int) -> Path:
    from subpixel.bundled import find, weights_path

    if find(weights) is not None:
        return weights_path(str(weights), scale)
    return Path(weights)


def espcn(scale: int = 3, *, weights: str | os.PathLike[str] | None = None, **config: Any) -> ESPCN:
    """Build a Keras :class:`ESPCN`, optionally with converted PyTorch weights.

    Args:
        scale: upscaling factor.
        weights: ``None`` (random initialisation), the name of bundled weights
            (``"DEFAULT"``, ``"espcn"``...: :mod:`subpixel.bundled`) for ``scale``, or the
            path of a subpixel ``.safetensors`` file of an ESPCN (what ``subpixel train``
            writes, or :func:`subpixel.keras.weights.save_torch`).
        **config: :class:`ESPCN`'s options. With weights, options not given come from the
            file and given ones must agree with it.

    Raises:
        ValueError: bad options; :class:`subpixel.serialization.WeightsError` for a file that
            is not an ESPCN's or whose tensors do not fit.

    Example:
        >>> tuple(espcn(2, weights="espcn").get_layer("upsample").kernel.shape)
        (3, 3, 32, 4)
    """
    if weights is None:
        return ESPCN(scale, **config)
    from subpixel.keras.weights import load_torch_state

    path = _weights_path(weights, scale)
    tensors, meta = load_weights(path)
    if meta.model not in (None, "espcn"):
        raise WeightsError(f"{path}: weights are for model {meta.model!r}, not 'espcn'")
    merged = dict(meta.config)
    merged.setdefault("scale", scale)
    for key, value in {"scale": scale, **config}.items():
        if key in merged and merged[key] != value and _as_list(merged[key]) != _as_list(value):
            raise WeightsError(
                f"{path}: weights were trained with {key}={merged[key]!r}, asked for {value!r}"
            )
        merged[key] = value
    order = merged.pop("order", "chw")
    try:
        model = ESPCN(**merged)
    except TypeError as exc:
        raise WeightsError(f"{path}: config {meta.config} is not an ESPCN's ({exc})") from None
    load_torch_state(model, tensors, order=order, source=str(path))
    return model


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value
