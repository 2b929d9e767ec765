"""TensorFlow Lite export of Keras models (TensorFlow backend), float32 or int8.

:func:`export_tflite` converts a Keras model with TensorFlow's converter, builtin operators
only (no Flex/Select TF ops), so the file runs in any TFLite interpreter. With
``quantize="int8"`` weights and activations are int8 (full integer quantisation, calibrated
on a representative dataset); input and output stay float32 unless ``int8_io=True``.
:func:`run_tflite` runs a file with ``tf.lite.Interpreter`` on inputs of any size (the
exported input shape keeps unknown sizes unknown).

A :class:`subpixel.keras.models.ESPCN` exports as ``CONV_2D`` (ReLU fused), one
``DEPTH_TO_SPACE`` (the shuffle, order ``"hwc"``), and for the bicubic residual
``CONCATENATION``/``STRIDED_SLICE`` (replicate padding), ``CONV_2D``, ``DEPTH_TO_SPACE`` and
``ADD``. ``docs/keras.md`` lists which delegates take ``DEPTH_TO_SPACE``.

Example:
    >>> import keras, numpy as np, os, tempfile
    >>> from subpixel.keras.models import espcn
    >>> model = espcn(2, weights="espcn")
    >>> path = os.path.join(tempfile.mkdtemp(), "espcn_x2.tflite")
    >>> export_tflite(model, path)
    >>> x = np.random.default_rng(0).random((1, 12, 16, 1), dtype=np.float32)
    >>> y = keras.ops.convert_to_numpy(model(x))
    >>> bool(np.abs(run_tflite(path, x) - y).max() < 1e-4)
    True
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict

import keras
import numpy as np

from subpixel._files import atomic_write_bytes

__all__ = ["calibration_inputs", "export_tflite", "float_parts", "run_tflite", "tflite_ops"]


class FloatParts(TypedDict, total=False):
    """:func:`export_tflite`'s selective-quantisation arguments."""

    float_layers: list[str]
    float_ops: list[str]


def float_parts(model: keras.Model) -> FloatParts:
    """What an int8 export of ``model`` keeps in float32: an ESPCN's bicubic skip and its add.

    The skip is a fixed bicubic filter whose int8 copy shifts its gain by 0.25-1.7 %: fully
    integer, the bundled ``espcn`` loses 0.10-0.18 dB on Set5; with the skip in float32,
    0.01-0.07 dB (docs/keras.md). A model without the skip: nothing (fully integer).
    Pass the result to :func:`export_tflite` as keyword arguments.

    Example:
        >>> from subpixel.keras.models import ESPCN
        >>> float_parts(ESPCN(2, residual="bicubic"))
        {'float_layers': ['residual'], 'float_ops': ['ADD']}
        >>> float_parts(ESPCN(2))
        {}
    """
    if any(layer.name == "residual" for layer in model.layers):
        return FloatParts(float_layers=["residual"], float_ops=["ADD"])
    return FloatParts()


def calibration_inputs(
    sources: Iterable[str | os.PathLike[str]],
    scale: int,
    *,
    channels: int = 1,
    count: int = 64,
    patch: int = 32,
    max_images: int = 20,
    seed: int = 0,
) -> list[np.ndarray]:
    """``count`` LR patches ``(1, patch, patch, channels)`` for int8 calibration.

    Cut from the first ``max_images`` images of ``sources`` (folders or files, as
    :func:`subpixel.data.find_images` lists them) and downscaled as training does (MATLAB
    bicubic; Y for one channel, RGB for three), seeded. Use training images, not test images.

    Raises:
        FileNotFoundError, ValueError: no such folder, no images, or images too small for
            ``patch·scale`` pixels.
    """
    import torch

    from subpixel.data import PatchSampler, find_images, load_image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (Y) or 3 (RGB), got {channels}")
    images = [load_image(p) for p in find_images(sources)[:max_images]]
    sampler = PatchSampler(
        images, scale=scale, patch=patch, augment_scales=(), y_only=channels == 1
    )
    lr, _ = sampler.batch(count, torch.Generator().manual_seed(seed))
    return [p[None].permute(0, 2, 3, 1).numpy() for p in lr]


def _tensorflow() -> Any:
    if keras.config.backend() != "tensorflow":
        raise RuntimeError(
            "TensorFlow Lite export needs the TensorFlow backend: set KERAS_BACKEND=tensorflow "
            f"before importing Keras (the backend is {keras.config.backend()!r}); models "
            "saved as .keras on another backend load there unchanged"
        )
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - keras' TF backend imports it already
        raise ImportError(
            "TensorFlow Lite export needs tensorflow: pip install tensorflow"
        ) from exc
    return tf


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    representative: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    float_layers: Sequence[str] = (),
    float_ops: Sequence[str] = (),
    input_shape: Sequence[int | None] | None = None,
    int8_io: bool = False,
) -> None:
    """Convert ``model`` to a ``.tflite`` file (builtin operators only).

    Args:
        model: a Keras model with one input, built (a functional model or one that was
            called).
        path: the file to write (atomically).
        quantize: ``None`` (float32) or ``"int8"`` (weights and activations int8).
        representative: with ``"int8"``: the calibration inputs, an iterable (or a function
            returning one) of arrays shaped like the model's input, e.g. a few hundred
            training patches. Not test images.
        float_layers: with ``"int8"``: names of Keras layers whose operators stay float32
            (selective quantisation; TFLite adds the ``DEQUANTIZE``/``QUANTIZE`` around them).
            Empty (the default): everything is int8 (full integer quantisation).
        float_ops: with ``"int8"``: TFLite operator types that stay float32 (e.g. ``"ADD"``).
        input_shape: the exported input shape; ``None`` sizes stay dynamic. Default: the
            model's input shape (batch and spatial sizes dynamic for an ESPCN).
        int8_io: with ``"int8"``, make the input and output int8 too (scale and zero point
            in the interpreter's tensor details) instead of float32.

    Raises:
        RuntimeError: the Keras backend is not TensorFlow.
        ValueError: a bad ``quantize``, ``"int8"`` without ``representative``, options that
            need ``"int8"``, or a ``float_layers`` name that matches no operator.
    """
    tf = _tensorflow()
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("quantize='int8' needs representative inputs for calibration")
    if quantize != "int8" and (int8_io or float_layers or float_ops):
        raise ValueError("int8_io, float_layers and float_ops need quantize='int8'")
    if input_shape is None:
        shape = model.input_shape
        if isinstance(shape, list):
            raise ValueError(f"only single-input models are supported, got inputs {shape}")
        input_shape = tuple(shape)
    spec = tf.TensorSpec(tuple(input_shape), tf.float32, name="input")
    with tempfile.TemporaryDirectory() as saved:
        # Keras's own route (keras.Model.export(format="litert")): a SavedModel first, so
        # the variables are frozen into constants.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "int8":
            data = converter.convert()
        elif not (float_layers or float_ops):
            _set_int8(tf, converter, representative, int8_io)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            data = converter.convert()
        else:
            nodes = _tensor_names(converter.convert(), float_layers)
            _set_int8(tf, converter, representative, int8_io)
            options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=nodes, denylisted_ops=list(float_ops)
            )
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=converter.representative_dataset,
                debug_options=options,
            )
            data = debugger.get_nondebug_quantized_model()
    atomic_write_bytes(path, data)


def _set_int8(
    tf: Any,
    converter: Any,
    representative: Iterable[Any] | Callable[[], Iterable[Any]] | None,
    int8_io: bool,
) -> None:
    assert representative is not None
    source = representative

    def calibration() -> Iterable[list[np.ndarray]]:
        items = source() if callable(source) else source
        for item in items:
            yield [np.asarray(item, dtype=np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def _tensor_names(float_model: bytes, layers: Sequence[str]) -> list[str]:
    """Output tensors of the operators that Keras layers ``layers`` became (float model).

    TensorFlow names a tensor by its op path (``model_1/layer_1/conv...``; fused operators
    join several with ``;``), so a layer's operators are those with a path component equal
    to the layer's name, with or without Keras's ``_<n>`` call suffix.
    """
    tf = _tensorflow()
    interpreter = _interpreter(tf, model_content=float_model)
    details = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    names: list[str] = []
    for layer in layers:
        pattern = re.compile(rf"(^|[/;]){re.escape(layer)}(_\d+)?/")
        found = [
            details[i]
            for op in interpreter._get_ops_details()
            for i in op["outputs"]
            if pattern.search(details[i])
        ]
        if not found:
            raise ValueError(f"float_layers: no operator of the model comes from layer {layer!r}")
        names += found
    return names


def _interpreter(tf: Any, **kwargs: Any) -> Any:
    """``ai_edge_litert``'s interpreter when installed, else ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter(**kwargs)


def tflite_ops(model: str | os.PathLike[str] | bytes) -> list[str]:
    """The operator types of a ``.tflite`` file (or its bytes), in execution order, as
    TFLite's interpreter lists them before any delegate takes them (``CONV_2D``...)."""
    tf = _tensorflow()
    kwargs: dict[str, Any] = (
        {"model_content": model} if isinstance(model, bytes) else {"model_path": os.fspath(model)}
    )
    interpreter = _interpreter(tf, **kwargs)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def run_tflite(
    model: str | os.PathLike[str] | bytes, x: Any, *, num_threads: int | None = None
) -> np.ndarray:
    """Run a ``.tflite`` file (or its bytes) on ``x`` with TensorFlow Lite's interpreter.

    The interpreter is ``ai_edge_litert``'s (LiteRT) when that package is installed, else
    ``tf.lite.Interpreter`` (which TensorFlow 2.21 still ships, with a deprecation warning).

    The input is resized to ``x``'s shape first, so a model exported with dynamic sizes takes
    any image. float32 in and out (an ``int8_io`` model's input is quantised and its output
    dequantised here with the tensors' scale and zero point).
    """
    tf = _tensorflow()
    kwargs: dict[str, Any] = {"num_threads": num_threads}
    if isinstance(model, bytes):
        kwargs["model_content"] = model
    else:
        kwargs["model_path"] = os.fspath(model)
    interpreter = _interpreter(tf, **kwargs)
    (inp,) = interpreter.get_input_details()
    arr = np.asarray(x, dtype=np.float32)
    interpreter.resize_tensor_input(inp["index"], arr.shape, strict=False)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        arr = np.clip(np.round(arr / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], arr)
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return np.asarray(y, dtype=np.float32)
