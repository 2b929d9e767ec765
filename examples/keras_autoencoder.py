"""The MNIST sub-pixel autoencoder in Keras 3, on any backend.

The companion article's model (``subpixel.models.autoencoder`` in PyTorch), written with
``subpixel.keras``: a small convolutional encoder to a dense code, and a decoder that goes
7×7 -> 14×14 -> 28×28 with two ICNR-initialised sub-pixel convolutions
(``SubPixelConv2D``), or with their transposed-convolution twins for comparison. MNIST is
read from the four idx files (``subpixel.applications.idx``), by default in
``$SUBPIXEL_DATA/mnist``.

    KERAS_BACKEND=jax python examples/keras_autoencoder.py --steps 500
    KERAS_BACKEND=torch python examples/keras_autoencoder.py --decoder transposed --steps 500

Prints the mean squared reconstruction error on test images before and after training.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from subpixel.applications.idx import load_mnist
from subpixel.keras import SubPixelConv2D

DECODERS = ("subpixel", "transposed")


def upsampler(kind: str, filters: int, name: str) -> keras.layers.Layer:
    """×2: a 3×3 sub-pixel convolution (ICNR) or a 6×6 stride-2 transposed convolution."""
    if kind == "subpixel":
        return SubPixelConv2D(filters, 3, 2, order="tensorflow", name=name)
    return keras.layers.Conv2DTranspose(filters, 6, strides=2, padding="same", name=name)


def build_autoencoder(decoder: str = "subpixel", latent: int = 64) -> keras.Model:
    """``(N, 28, 28, 1)`` in [0, 1] -> the same, through a ``latent``-sized code."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    x = inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    code = keras.layers.Dense(latent, name="code")(keras.layers.Flatten()(x))
    x = keras.layers.Dense(7 * 7 * 32, activation="relu")(code)
    x = keras.layers.Reshape((7, 7, 32))(x)
    x = keras.layers.ReLU()(upsampler(decoder, 32, "up1")(x))
    x = upsampler(decoder, 1, "up2")(x)
    outputs = keras.layers.Activation("sigmoid")(x)
    return keras.Model(inputs, outputs, name=f"autoencoder_{decoder}")


def load_images(root: Path, split: str, limit: int) -> np.ndarray:
    """MNIST images as float32 ``(N, 28, 28, 1)`` in [0, 1]."""
    images, _ = load_mnist(root, split, limit=limit)  # type: ignore[arg-type]
    return (images.astype(np.float32) / 255.0)[..., None]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    default = Path(os.environ.get("SUBPIXEL_DATA", "../shared/data")) / "mnist"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default, help="folder of the MNIST idx files")
    p.add_argument("--decoder", choices=DECODERS, default="subpixel")
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000, help="training steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-limit", type=int, default=60000, help="training images used")
    p.add_argument("--test-limit", type=int, default=1000, help="test images scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="save the trained model here (.keras)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    train = load_images(args.data, "train", args.train_limit)
    test = load_images(args.data, "test", args.test_limit)
    model = build_autoencoder(args.decoder, args.latent)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    before = model.evaluate(test, test, batch_size=256, verbose=0)
    epochs = max(1, args.steps * args.batch_size // len(train))
    steps = args.steps // epochs
    model.fit(
        train, train, batch_size=args.batch_size, epochs=epochs, steps_per_epoch=steps, verbose=0
    )
    after = model.evaluate(test, test, batch_size=256, verbose=0)
    print(
        f"{model.name} on {keras.config.backend()}: test MSE {before:.5f} -> {after:.5f} "
        f"after {epochs * steps} steps"
    )
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
