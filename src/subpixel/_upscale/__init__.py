"""Private implementation of :mod:`subpixel.upscale`: one concept per module.

``pipeline``
    the colour transform and chroma resampling a weights file asks for (:class:`Pipeline`).
``tiling``
    receptive radius of a model and overlapped tiles whose stitched result equals the
    untiled one.
``images``
    decoding (Pillow modes, EXIF orientation, 16 bits, decompression-bomb limit) and atomic
    encoding with ICC profile and DPI kept.
``png``
    a streaming PNG writer, so a huge output never has to sit in memory whole.
``video``
    frame streaming through PyAV with the audio remuxed.
``compare``
    the labelled side-by-side comparison figure (and where it goes, ``compare_path``).
``batch``
    many inputs: output paths, skipping, threads for decode/encode, the summary.

The modules import only downwards: from each other, from :mod:`subpixel._files` (atomic
writes, the output-is-input check), :mod:`subpixel._opencv_steps`, :mod:`subpixel.color`,
:mod:`subpixel.resize`, :mod:`subpixel.metrics`, :mod:`subpixel.serialization`,
:mod:`subpixel.backends` and :mod:`subpixel.fast`; never from :mod:`subpixel.upscale` or
:mod:`subpixel.interop` above them.
"""
