"""Upscale images (and, with :mod:`subpixel[video] <av>`, videos) with a super-resolution model.

``subpixel.upscale(image, scale=3, weights="DEFAULT")`` takes a PIL image, a numpy array
``(H, W[, C])`` (uint8, uint16 or float in [0, 1]) or a torch tensor ``(C, H, W)``/``(H, W)``
(float in [0, 1]) and returns the same kind with the same dtype, ``scale`` times larger.

RGB goes through the Y-channel model as in the ESPCN paper: RGB → YCbCr (BT.601 studio
range, :mod:`subpixel.color`), Y through the model (clamped to [0, 1]), Cb/Cr upscaled
bicubically, back to RGB, clamped and rounded. Grey images go through the model directly;
alpha is upscaled bicubically. A weights file may ask for another processing with its
``subpixel.pipeline`` metadata (:class:`Pipeline`), as models imported from OpenCV do.
Large images are processed in overlapped tiles whose result equals the untiled one.

This module is callable: ``subpixel.upscale(...)`` and ``subpixel.upscale.upscale(...)``
are the same function.

Example:
    >>> import numpy as np
    >>> from subpixel.models import get_model
    >>> from subpixel.upscale import upscale
    >>> model = get_model("espcn", scale=2)          # untrained: use weights="DEFAULT"
    >>> img = np.zeros((10, 12, 3), dtype=np.uint8)
    >>> upscale(img, weights=model).shape
    (20, 24, 3)
    >>> up = Upscaler(model, tile=256)               # reuse one model for many images
    >>> up(np.zeros((5, 5), dtype=np.float32)).dtype
    dtype('float32')
    >>> up.backend.exact                             # which code runs, and why: .describe()
    True
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn

from subpixel._files import atomic_path, check_output
from subpixel._upscale.compare import compare_path
from subpixel._upscale.engine import DEFAULT_TILE, Engine
from subpixel._upscale.images import (
    IMAGE_EXTENSIONS,
    Decoded,
    ImageError,
    Sink,
    array_from_pil,
    array_to_pil,
    open_sink,
    output_format,
    read_image,
    scaled_meta,
)
from subpixel._upscale.pipeline import PIPELINE_KEY, Pipeline, pipeline_of, read_pipeline
from subpixel.backends import Choice
from subpixel.serialization import WeightsError, sniff_weights

if TYPE_CHECKING:
    from subpixel._upscale.video import VideoResult

__all__ = [
    "DEFAULT_TILE",
    "IMAGE_EXTENSIONS",
    "PIPELINE_KEY",
    "ImageError",
    "Pipeline",
    "Upscaler",
    "WeightsError",
    "compare_path",
    "load_upscaling_model",
    "read_pipeline",
    "upscale",
    "upscale_file",
]

ImageError.__module__ = __name__
Pipeline.__module__ = __name__

Weights = str | os.PathLike[str] | nn.Module
ImageT = TypeVar("ImageT")


def load_upscaling_model(
    weights: Weights = "DEFAULT", scale: int | None = None
) -> tuple[nn.Module, Pipeline]:
    """The model and :class:`Pipeline` for ``weights``.

    Args:
        weights: the name of bundled weights (``"DEFAULT"``, ``"espcn"``...:
            :mod:`subpixel.bundled`) for ``scale``, a ``.safetensors`` path (any registered
            model; never unpickled), an OpenCV ``dnn_superres`` TensorFlow graph
            (``ESPCN_x3.pb``, ``FSRCNN_x2.pb``...: imported on the fly, with OpenCV's
            processing, as ``subpixel import-opencv`` would), or an ``nn.Module``.
        scale: the factor; ``None`` means the bundle's default factor (3, faces 4) for a
            name, the file's own factor for a path, the model's for a module. A file or
            module of another factor is refused.

    Raises:
        WeightsError: missing, corrupt, pickled or mismatched weights (a ``ValueError``).
        ValueError: a module whose factor differs from ``scale``.
    """
    from subpixel.bundled import find, weights_path
    from subpixel.models import load_model

    if isinstance(weights, nn.Module):
        model_scale = getattr(weights, "scale", None)
        if scale is not None and isinstance(model_scale, int) and model_scale != scale:
            raise ValueError(f"the model upscales ×{model_scale}, asked for scale={scale}")
        return weights, Pipeline()
    options: dict[str, Any] = {} if scale is None else {"scale": scale}
    path = weights_path(str(weights), scale) if find(weights) is not None else Path(weights)
    if path.suffix.lower() == ".pb":
        return _import_opencv_graph(path, scale)
    if path.suffix.lower() in (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"):
        sniff_weights(path)  # names the problem (pickle/zip) precisely
        raise WeightsError(f"{path}: only .safetensors weights are loaded (never pickles)")
    model, _, meta = load_model(path, **options)  # the file read once; its header says which
    if scale is not None and getattr(model, "scale", scale) != scale:
        raise WeightsError(f"{path}: weights upscale ×{model.scale}, asked for scale={scale}")
    return model, pipeline_of(meta, path)


def _import_opencv_graph(path: Path, scale: int | None) -> tuple[nn.Module, Pipeline]:
    """An OpenCV ``dnn_superres`` ``.pb`` graph as a model with OpenCV's processing."""
    from subpixel.interop.opencv import PIPELINE, import_opencv

    imported = import_opencv(path)  # GraphDefError (a ValueError) names the file
    if scale is not None and imported.scale != scale:
        raise WeightsError(f"{path}: the graph upscales ×{imported.scale}, asked for scale={scale}")
    return imported.model, Pipeline(**PIPELINE)


def _check_device(device: str | torch.device) -> None:
    """Refuse a device that is unknown, unavailable here, or holds no data (``meta``).

    Raises:
        ValueError: naming the device and why.
    """
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is available")
    try:
        dev = torch.device(device)
        torch.empty(1, device=dev)
    except (RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"device={str(device)!r} cannot be used here ({reason})") from None
    if dev.type == "meta":
        raise ValueError("device='meta' holds no data; use 'cpu' or 'cuda'")


class Upscaler:
    """A loaded model that upscales images, arrays, tensors and files.

    Args:
        weights: see :func:`load_upscaling_model`.
        scale: see :func:`load_upscaling_model`.
        pipeline: override the processing (default: from the weights file, else the paper's).
        device: ``"cpu"``, ``"cuda"``...; default: the model's device (CPU for files). A device
            that is unknown or unavailable here raises ``ValueError``.
        tile: tile size in input pixels (``0``: whole images at once).
        max_pixels: refuse input files with more pixels (default: Pillow's 89.5 MP limit;
            ``0``: no limit).
        precision: ``"auto"`` (default: exact fp32, or bf16 where the CPU has AMX and it is
            faster), ``"fp32"`` (exact, refuses bf16), ``"bf16"`` or ``"int8"`` (CPU; faster,
            approximate). :attr:`backend` tells which backend
            (:mod:`subpixel.backends`) runs the model, and why the faster ones declined.

    Example:
        >>> import torch
        >>> from subpixel.models import get_model
        >>> up = Upscaler(get_model("espcn", scale=3))
        >>> up.scale, up(torch.rand(1, 4, 6)).shape
        (3, torch.Size([1, 12, 18]))
    """

    def __init__(
        self,
        weights: Weights = "DEFAULT",
        scale: int | None = None,
        *,
        pipeline: Pipeline | None = None,
        device: str | torch.device | None = None,
        tile: int = DEFAULT_TILE,
        max_pixels: int | None = None,
        precision: str = "auto",
    ) -> None:
        model, file_pipeline = load_upscaling_model(weights, scale)
        if device is not None:
            _check_device(device)
        self.engine = Engine(
            model, pipeline=pipeline or file_pipeline, device=device, tile=tile, precision=precision
        )
        self.max_pixels = max_pixels
        self.model_name = type(model).__name__

    @property
    def scale(self) -> int:
        """The upscaling factor."""
        return self.engine.scale

    @property
    def backend(self) -> Choice:
        """The backend chosen to run the model (``.name``, ``.kernels``, ``.declined``...).

        ``print(up.backend.describe())`` says which code runs an upscale and why.
        """
        return self.engine.backend

    @property
    def pipeline(self) -> Pipeline:
        """The colour/chroma processing in use."""
        return self.engine.pipeline

    # -- in-memory images ------------------------------------------------------------------

    def _array(self, arr: np.ndarray) -> np.ndarray:
        """``(H, W[, C])`` uint8/uint16/float → same dtype, ×scale."""
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
            raise ValueError(
                f"expected an image array (H, W) or (H, W, C) with C in 1..4, got {arr.shape}"
            )
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"empty image of shape {arr.shape}")
        x = arr[..., None] if arr.ndim == 2 else arr
        if arr.dtype in (np.uint8, np.uint16):
            out = self.engine.run(x[None])[0]
        elif np.issubdtype(arr.dtype, np.floating):
            x32 = np.asarray(x, dtype=np.float32)
            lo, hi = (float(x32.min()), float(x32.max())) if x32.size else (0.0, 0.0)
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(
                    f"float images must hold values in [0, 1]; got [{lo:g}, {hi:g}] "
                    "(divide 8-bit values by 255)"
                )
            out = self.engine.run(np.clip(x32, 0, 1)[None])[0].astype(arr.dtype)
        else:
            raise TypeError(f"image arrays must be uint8, uint16 or float, got {arr.dtype}")
        return out[..., 0] if arr.ndim == 2 else out

    def _tensor(self, t: torch.Tensor) -> torch.Tensor:
        if t.dim() not in (2, 3, 4):
            raise ValueError(
                f"expected a tensor (H, W), (C, H, W) or (N, C, H, W), got {tuple(t.shape)}"
            )
        x = t[None, None] if t.dim() == 2 else (t[None] if t.dim() == 3 else t)
        if x.shape[1] not in (1, 2, 3, 4):
            raise ValueError(f"expected 1 to 4 channels, got tensor of shape {tuple(t.shape)}")
        nhwc = x.detach().permute(0, 2, 3, 1).cpu()
        if t.is_floating_point():
            arr = nhwc.float().numpy()
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(f"float tensors must hold values in [0, 1]; got [{lo:g}, {hi:g}]")
            arr = np.clip(arr, 0, 1)
        elif t.dtype == torch.uint8:
            arr = nhwc.numpy()
        else:
            raise TypeError(f"image tensors must be float in [0, 1] or uint8, got {t.dtype}")
        out = torch.from_numpy(self.engine.run(np.ascontiguousarray(arr)))
        out = out.permute(0, 3, 1, 2).to(dtype=t.dtype, device=t.device)
        return out[0, 0] if t.dim() == 2 else (out[0] if t.dim() == 3 else out)

    def _pil(self, im: Any) -> Any:
        from PIL import Image

        im.load()
        info = {k: im.info[k] for k in ("icc_profile", "exif") if im.info.get(k)}
        if im.mode == "F":
            out = Image.fromarray(self._array(np.asarray(im, dtype=np.float32).clip(0, 1)), "F")
        else:
            arr, icc = array_from_pil(im)
            if icc:
                info["icc_profile"] = icc
            out = array_to_pil(self._array(arr))
            if im.mode == "I":
                out = out.convert("I")
        dpi = im.info.get("dpi")
        if isinstance(dpi, tuple) and len(dpi) == 2:
            info["dpi"] = (float(dpi[0]) * self.scale, float(dpi[1]) * self.scale)
        out.info.update(info)
        return out

    def __call__(self, image: ImageT) -> ImageT:
        """Upscale a PIL image, numpy array or torch tensor; returns the same kind.

        PIL modes are converted as files are (1 → L, P → RGB/RGBA, CMYK → RGB, I;16 stays
        16-bit); ICC profile and EXIF are kept in ``info`` and DPI is multiplied by the
        factor. EXIF orientation of an in-memory image is left as it is.

        Raises:
            TypeError: an unsupported type or dtype.
            ValueError: a bad shape, or float values outside [0, 1].
        """
        if isinstance(image, torch.Tensor):
            result: Any = self._tensor(image)
        elif isinstance(image, np.ndarray):
            result = self._array(image)
        elif type(image).__module__.startswith("PIL.") and hasattr(image, "mode"):
            result = self._pil(image)
        else:
            raise TypeError(
                "upscale() takes a PIL image, a numpy array or a torch tensor, "
                f"got {type(image).__name__}"
            )
        return result

    # -- files -----------------------------------------------------------------------------

    def upscale_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        compare: bool = False,
        reference: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Upscale the image file ``src`` into ``dst`` (format from ``dst``'s extension).

        The output is streamed strip by strip (PNG never holds the whole output in
        memory) and written atomically; ``src`` is never modified. With ``compare``, also
        writes ``<dst stem>.compare.png`` beside ``dst`` (see :func:`compare_path`).

        Returns:
            ``dst`` as a ``Path``.

        Raises:
            ImageError: a problem with ``src`` or ``reference``.
            FileExistsError: ``dst`` exists and not ``overwrite``.
            ValueError: ``dst`` is ``src``, or its extension is not an image format.
            OSError: ``dst`` cannot be written.
        """
        return self._upscale_file(
            src, dst, overwrite=overwrite, compare=compare, reference=reference
        )

    def _upscale_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        compare: bool = False,
        reference: str | os.PathLike[str] | None = None,
        decoded: Decoded | None = None,
        wrap_sink: Callable[[Sink], Sink] | None = None,
    ) -> Path:
        """:meth:`upscale_file` with a batch run's plumbing (``subpixel upscale``'s jobs).

        ``decoded``: ``src`` already decoded (ahead, in another thread); ``wrap_sink``:
        wraps the encoder (e.g. in a thread of its own).
        """
        from subpixel._upscale.compare import make_figure, window_for

        src_p, dst_p = Path(src), Path(dst)
        fmt = output_format(dst_p)
        check_output(src_p, dst_p, overwrite=overwrite)
        if decoded is None:
            decoded = read_image(src_p, max_pixels=self.max_pixels)
        ref = None
        if reference is not None:
            ref = read_image(Path(reference), max_pixels=self.max_pixels).pixels
        lr = decoded.pixels
        s = self.scale
        h, w, c = lr.shape
        window = window_for(h * s, w * s, s)
        sr_crop = np.empty((window.h, window.w, c), dtype=lr.dtype) if compare else None
        meta = scaled_meta(decoded.meta, s)
        with atomic_path(dst_p) as tmp:
            sink = open_sink(tmp, fmt, h * s, w * s, c, lr.dtype, meta)
            if wrap_sink is not None:
                sink = wrap_sink(sink)
            try:
                for row, strip in self.engine.strips(lr[None]):
                    sink.write(strip[0])
                    if sr_crop is not None:
                        window.take(row, strip[0], sr_crop)
                sink.close()  # a failure here too stops the sink's threads and its file
            except BaseException:
                getattr(sink, "abort", lambda: None)()
                raise
        if sr_crop is not None:
            fig = make_figure(
                lr,
                sr_crop,
                window,
                scale=s,
                pipeline=self.pipeline,
                model_name=self.model_name,
                reference=ref,
            )
            with atomic_path(compare_path(dst_p)) as tmp:
                fig.save(tmp, format="PNG")
        return dst_p

    def upscale_video(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        batch: int = 8,
        codec: str | None = None,
        crf: int = 18,
        progress: bool | None = None,
        on_frames: Callable[[int], None] | None = None,
    ) -> VideoResult:
        """Upscale the video file ``src`` into ``dst`` (needs ``subpixel[video]``, PyAV).

        Frame rate, timestamps and audio are kept; the container follows ``dst``'s
        extension (H.264 for .mp4/.mkv/.mov, VP9 for .webm, MPEG-4 for .avi); written
        atomically, ``src`` is never modified.

        Args:
            batch: frames per model call (at most); ``codec``: encoder name (default from
                the container); ``crf``: quality for H.264/VP9 (lower is better);
                ``progress``: a progress bar (default: when stderr is a terminal);
                ``on_frames``: called with the frame count after each batch.

        Returns:
            A ``VideoResult`` (``path``, ``frames``, ``seconds``, ``audio_streams``, ``fps``).

        Raises:
            ImageError: an unreadable video or one without a video stream.
            FileExistsError: ``dst`` exists and not ``overwrite``.
            ValueError: ``dst`` is ``src``.
            ImportError: PyAV is not installed.

        Example (needs PyAV and a video; not run here)::

            up = Upscaler(scale=2)
            result = up.upscale_video("clip.mp4", "clip_x2.mp4")
            print(result.frames, result.fps)
        """
        from subpixel._upscale.video import upscale_video

        src_p, dst_p = Path(src), Path(dst)
        check_output(src_p, dst_p, overwrite=overwrite)
        return upscale_video(
            self.engine,
            src_p,
            dst_p,
            batch=batch,
            codec=codec,
            crf=crf,
            progress=progress,
            on_frames=on_frames,
        )


def upscale(
    image: ImageT,
    scale: int | None = None,
    weights: Weights = "DEFAULT",
    *,
    pipeline: Pipeline | None = None,
    device: str | torch.device | None = None,
    tile: int = DEFAULT_TILE,
) -> ImageT:
    """Upscale ``image`` by ``scale`` with a super-resolution model; returns the same kind.

    Args:
        image: a PIL image; a numpy array ``(H, W)`` or ``(H, W, C)`` (C = 1, 2 grey+alpha,
            3 RGB, 4 RGBA) of uint8, uint16 or float in [0, 1]; or a torch tensor ``(H, W)``,
            ``(C, H, W)`` or ``(N, C, H, W)`` of float in [0, 1] (or uint8).
        scale: the factor; ``None`` means 3 with ``"DEFAULT"`` weights, else the weights'.
        weights: ``"DEFAULT"``, a ``.safetensors`` path or an ``nn.Module``.
        pipeline: colour/chroma processing; default from the weights file (the paper's for
            a module).
        device: where the model runs.
        tile: tile size in input pixels (the result does not depend on it).

    Returns:
        The upscaled image: same type, dtype (and device for tensors), ``scale`` times the
        height and width.

    Raises:
        WeightsError: missing, corrupt, pickled or mismatched weights.
        TypeError, ValueError: an unsupported image.

    Example:
        >>> import torch
        >>> from subpixel.models import get_model
        >>> upscale(torch.rand(3, 8, 8), weights=get_model("espcn", scale=2)).shape
        torch.Size([3, 16, 16])
    """
    return Upscaler(weights, scale, pipeline=pipeline, device=device, tile=tile)(image)


def upscale_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: int | None = None,
    weights: Weights = "DEFAULT",
    overwrite: bool = False,
    compare: bool = False,
    reference: str | os.PathLike[str] | None = None,
    max_pixels: int | None = None,
    tile: int = DEFAULT_TILE,
    device: str | torch.device | None = None,
) -> Path:
    """Upscale an image file into ``dst``; see :meth:`Upscaler.upscale_file`."""
    up = Upscaler(weights, scale, device=device, tile=tile, max_pixels=max_pixels)
    return up.upscale_file(src, dst, overwrite=overwrite, compare=compare, reference=reference)


class _CallableModule(types.ModuleType):
    """Lets ``subpixel.upscale(image, ...)`` call :func:`upscale` although it is a module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return upscale(*args, **kwargs)


__signature__ = inspect.signature(upscale)
sys.modules[__name__].__class__ = _CallableModule
