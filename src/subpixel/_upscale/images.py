"""Decoding and encoding image files for upscaling.

Decoding turns every Pillow mode into one of four layouts, ``(H, W, C)`` with C = 1 grey,
2 grey+alpha, 3 RGB, 4 RGBA, as uint8 or uint16:

==========================  ==============================================================
input                       becomes
==========================  ==============================================================
``1`` (bilevel)             grey 8-bit (0/255): the upscaled edges are grey, not bilevel
``P``/``PA`` (palette)      RGB, or RGBA when the palette has transparency
``CMYK``                    RGB through the embedded ICC profile (sRGB out) when there is
                            one, else Pillow's conversion
``I;16*``, ``I``, ``F``     grey 16-bit
``LA``/``La``/``RGBa``      grey+alpha / RGBA (un-premultiplied)
16-bit RGB(A) PNG/TIFF      16-bit RGB(A) through FFmpeg (PyAV, ``subpixel[video]``);
                            Pillow alone reads them as 8-bit (a warning says so)
==========================  ==============================================================

EXIF orientation is applied (and removed from the EXIF kept). The decompression-bomb limit
is checked against ``max_pixels`` before any pixel is decoded. Every problem with an input
file raises :class:`ImageError` with the file named.

Encoding follows the output extension (PNG, JPEG, BMP, TIFF, WebP); PNG is streamed by
:class:`~subpixel._upscale.png.PngWriter`, the others go through Pillow. ICC profile, EXIF
and DPI (multiplied by the factor, so the printed size stays the same) are written where
the format can hold them.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from subpixel._files import output_of
from subpixel._upscale.png import PngWriter

__all__ = [
    "IMAGE_EXTENSIONS",
    "Decoded",
    "ImageError",
    "ImageMeta",
    "Sink",
    "array_from_pil",
    "array_to_pil",
    "open_sink",
    "output_format",
    "read_image",
]

#: Extensions read and written (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_OPEN_LOCK = threading.Lock()
#: TIFF tags that describe how the pixels are stored, not the picture. A TIFF's EXIF as
#: Pillow reads it is its whole first IFD: copied into the output they would describe the
#: input's layout (size, strips, compression) and corrupt the written file. DPI and the
#: ICC profile are written from their own fields.
_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284}
    | {296, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 530, 531, 532, 34675}
    | set(range(512, 522))
)


class ImageError(ValueError):
    """An input image that cannot be upscaled: unreadable, corrupt, too large, or not one."""


@dataclass(frozen=True)
class ImageMeta:
    """What an image keeps besides its pixels."""

    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None
    format: str | None = None


@dataclass(frozen=True)
class Decoded:
    """An input image: ``pixels`` ``(H, W, C)`` uint8/uint16 and its metadata."""

    pixels: np.ndarray
    meta: ImageMeta


def output_format(path: str | Path) -> str:
    """The Pillow format name for an output path's extension.

    Raises:
        ValueError: for an extension that is not an image format we write.
    """
    ext = Path(path).suffix.lower()
    if ext not in _FORMATS:
        raise ValueError(
            f"{path}: cannot write {ext or 'files without an extension'}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    return _FORMATS[ext]


# -- decoding -----------------------------------------------------------------------------


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _cmyk_to_rgb(im: Any) -> tuple[Any, bytes | None]:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            import io

            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB"), _srgb_profile()
        except Exception:  # a broken profile: fall back to Pillow's plain conversion
            pass
    return im.convert("RGB"), None


def array_from_pil(im: Any) -> tuple[np.ndarray, bytes | None]:
    """Pixels ``(H, W, C)`` uint8/uint16 of a loaded PIL image, and a replacement ICC profile.

    The second value is not ``None`` only when the colours were converted into another
    space (CMYK → sRGB), whose profile the output must then carry.
    """
    mode, icc = im.mode, None
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if alpha else "RGB")
    elif mode == "CMYK":
        im, icc = _cmyk_to_rgb(im)
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    if im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.uint16)
    elif im.mode == "I":
        arr = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif im.mode == "F":
        arr = np.floor(np.clip(np.asarray(im), 0, 1) * 65535 + 0.5).astype(np.uint16)
    elif im.mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    else:
        arr = np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB"))
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr), icc


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to ``(H, W, C)`` as Pillow's ``exif_transpose``."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _is_deep_color(path: Path, im: Any) -> bool:
    """A 16-bit grey+alpha/RGB/RGBA file, which Pillow would reduce to 8 bits."""
    if im.format == "PNG":
        with path.open("rb") as fh:
            head = fh.read(26)
        return len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)
    if im.format == "TIFF":
        bits = im.tag_v2.get(258)
        return isinstance(bits, tuple) and len(bits) >= 2 and all(b == 16 for b in bits)
    return False


def _read_deep(path: Path, channels: int) -> np.ndarray | None:
    """16-bit colour pixels through FFmpeg, or ``None`` when PyAV is missing."""
    try:
        import av
    except ImportError:
        return None
    fmt = {2: "rgba64le", 3: "rgb48le", 4: "rgba64le"}[channels]
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        arr = frame.to_ndarray(format=fmt)
    if channels == 2:
        arr = arr[..., [0, 3]]
    return np.ascontiguousarray(arr.astype(np.uint16))


def _open(path: Path, max_pixels: int | None) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    # Pillow's own bomb check uses a global; ours below uses max_pixels instead.
    with _OPEN_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = Image.open(path)
        except UnidentifiedImageError:
            with path.open("rb") as fh:
                head = fh.read(512)
            what = "a text file" if _looks_like_text(head) else "not an image format Pillow reads"
            raise ImageError(f"{path}: cannot read as an image ({what})") from None
        except OSError as exc:
            raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except Exception as exc:
            raise ImageError(f"{path}: corrupt image header ({exc})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = im.size
    if max_pixels is not None and w * h > max_pixels:
        im.close()
        raise ImageError(
            f"{path}: {w}×{h} = {w * h} pixels is over the decompression-bomb limit of "
            f"{max_pixels} pixels (raise it with --max-pixels / max_pixels=)"
        )
    return im


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def default_max_pixels() -> int:
    """Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 MP)."""
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def read_image(path: str | Path, *, max_pixels: int | None = None) -> Decoded:
    """Decode an image file into ``(H, W, C)`` pixels and the metadata to keep.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels (default: Pillow's limit, 89.5 MP);
            ``0`` or negative means no limit.

    Raises:
        ImageError: empty, unreadable, truncated or corrupt file, not an image, or over
            ``max_pixels``.
    """
    p = Path(path)
    limit = default_max_pixels() if max_pixels is None else max_pixels
    im = _open(p, limit if limit > 0 else None)
    from PIL import ImageOps

    with im:
        fmt = im.format
        try:
            exif_obj = im.getexif()
            orientation = int(exif_obj.get(0x0112, 1) or 1)
            deep = _is_deep_color(p, im)
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            pixels, icc = array_from_pil(im)
        except ImageError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ImageError(
                f"{p}: corrupt or truncated {fmt or 'image'} file ({detail})"
            ) from None
        exif = im.getexif()
        for tag in _LAYOUT_TAGS.intersection(exif):
            del exif[tag]
        exif_bytes = exif.tobytes() if len(exif) else None
        meta = ImageMeta(
            icc_profile=icc or im.info.get("icc_profile") or None,
            dpi=_dpi(im.info.get("dpi")),
            exif=exif_bytes,
            format=fmt,
        )
    if deep:
        try:
            deep_pixels = _read_deep(p, pixels.shape[-1])
        except Exception as exc:
            raise ImageError(f"{p}: corrupt 16-bit {fmt} file ({exc})") from None
        if deep_pixels is None:
            warnings.warn(
                f"{p}: 16-bit colour read as 8-bit; install 'subpixel[video]' (PyAV) to keep "
                "16 bits",
                stacklevel=2,
            )
        else:
            pixels = _orient(deep_pixels, orientation)
    return Decoded(pixels, meta)


#: Larger DPI values in a file are corruption (1e6 dpi is a 25 nm pixel).
_MAX_DPI = 1e6


def _dpi(value: object) -> tuple[float, float] | None:
    if isinstance(value, tuple) and len(value) == 2:
        try:
            x, y = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        if 0 < x <= _MAX_DPI and 0 < y <= _MAX_DPI:  # also rejects nan and inf
            return (x, y)
    return None


# -- encoding -----------------------------------------------------------------------------


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return arr


def array_to_pil(arr: np.ndarray) -> Any:
    """A PIL image of ``(H, W, C)`` uint8 (L, LA, RGB, RGBA) or grey uint16 (I;16) pixels.

    Raises:
        ValueError: for 16-bit grey+alpha or colour, which Pillow cannot hold.
    """
    from PIL import Image

    c = arr.shape[-1]
    if arr.dtype == np.uint16:
        if c != 1:
            raise ValueError("Pillow cannot hold 16-bit colour images")
        im16 = Image.fromarray(np.ascontiguousarray(arr[..., 0]))
        return im16 if im16.mode == "I;16" else im16.convert("I;16")
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if c == 1 else arr))


class Sink(Protocol):
    """Where output strips go: rows ``(r, W, C)`` in order, then ``close()``."""

    def write(self, rows: np.ndarray) -> None: ...

    def close(self) -> None: ...


#: zlib level of PNG outputs. Level 6 (Pillow's default) spent 1.96 s of the 2.58 s of a
#: 1920×1080 → ×2 PNG (benchmarks/bench_upscale.py); on an upscaled photo level 3 compresses
#: 4× faster for 5 % more bytes (142 → 36 ms, 692 → 725 KiB). Lossless either way.
#: :class:`PngWriter` deflates on ``torch.get_num_threads()`` threads: that PNG's encoding
#: took 623 → 322 ms on 2 threads (bench_upscale.py ``--threads 2``, medians of 9 runs).
PNG_COMPRESS_LEVEL = 3


class _PngSink:
    def __init__(
        self, path: str, height: int, width: int, channels: int, bits: int, meta: ImageMeta
    ):
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._png = PngWriter(
            self._fh,
            width=width,
            height=height,
            channels=channels,
            bit_depth=bits,
            icc_profile=meta.icc_profile,
            dpi=meta.dpi,
            exif=meta.exif,
            compress_level=PNG_COMPRESS_LEVEL,
        )

    def write(self, rows: np.ndarray) -> None:
        self._png.write_rows(rows)

    def close(self) -> None:
        try:
            self._png.close()
        finally:
            self._fh.close()

    def abort(self) -> None:
        """Stop the deflate threads and close the file, unfinished (the caller removes it)."""
        try:
            self._png.abort()
        finally:
            self._fh.close()


class _PilSink:
    def __init__(
        self,
        path: str,
        fmt: str,
        height: int,
        width: int,
        channels: int,
        dtype: np.dtype,
        meta: ImageMeta,
    ):
        self._path, self._fmt, self._meta = path, fmt, meta
        self._arr = np.empty((height, width, channels), dtype=dtype)
        self._row = 0

    def write(self, rows: np.ndarray) -> None:
        self._arr[self._row : self._row + rows.shape[0]] = rows
        self._row += rows.shape[0]

    def close(self) -> None:
        save_with_pil(self._arr, self._path, self._fmt, self._meta)


def save_with_pil(arr: np.ndarray, path: str, fmt: str, meta: ImageMeta) -> None:
    """Encode ``(H, W, C)`` pixels with Pillow as ``fmt``, converting what ``fmt`` cannot hold.

    JPEG drops alpha; JPEG, BMP and WebP are 8-bit; TIFF keeps 16-bit grey. 16-bit colour
    is reduced to 8 bits with a warning (write PNG to keep it).
    """
    c = arr.shape[-1]
    if fmt == "JPEG" and c in (2, 4):
        arr = arr[..., : c - 1]
    if arr.dtype == np.uint16 and (fmt in ("JPEG", "BMP", "WEBP") or c != 1):
        if c != 1:
            warnings.warn(
                f"{output_of(path)}: 16-bit colour written as 8-bit {fmt}; use .png", stacklevel=2
            )
        arr = _to_8bit(arr)
    im = array_to_pil(arr)
    if fmt in ("BMP", "WEBP") and im.mode == "LA":
        im = im.convert("RGBA")
    options: dict[str, Any] = {}
    if meta.icc_profile and fmt != "BMP":
        options["icc_profile"] = meta.icc_profile
    if meta.dpi and fmt in ("JPEG", "TIFF", "BMP", "PNG"):
        options["dpi"] = meta.dpi
    if meta.exif and fmt in ("JPEG", "TIFF", "WEBP", "PNG"):
        options["exif"] = meta.exif
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95)
    try:
        im.save(path, format=fmt, **options)
    except OSError as exc:
        if exc.errno is not None:  # a failed write (disk full...): the caller names the file
            raise
        raise OSError(f"{path}: cannot encode {fmt} ({exc})") from None
    except ValueError as exc:
        raise OSError(f"{path}: cannot encode {fmt} ({exc})") from None


def open_sink(
    path: str, fmt: str, height: int, width: int, channels: int, dtype: np.dtype, meta: ImageMeta
) -> Sink:
    """A :class:`Sink` writing ``fmt`` to ``path``: streamed PNG, or Pillow for the rest."""
    if fmt == "PNG":
        bits = 16 if dtype == np.uint16 else 8
        return _PngSink(path, height, width, channels, bits, meta)
    return _PilSink(path, fmt, height, width, channels, np.dtype(dtype), meta)


def scaled_meta(meta: ImageMeta, scale: int) -> ImageMeta:
    """``meta`` with the DPI multiplied by ``scale`` (same printed size, more pixels)."""
    if meta.dpi is None:
        return meta
    return replace(meta, dpi=(meta.dpi[0] * scale, meta.dpi[1] * scale))
