"""Applications of sub-pixel convolution, built on the library (which never imports them).

- :mod:`~subpixel.applications.experiments`: the original project's experiments (MNIST
  auto-encoders and DCGAN-style generators with sub-pixel vs transposed upsampling, the
  checkerboard comparison), run by ``subpixel experiment``.
- :mod:`~subpixel.applications.checkerboard`: the checkerboard-artefact score of an image.
- :mod:`~subpixel.applications.idx`: the IDX file reader for MNIST and Fashion-MNIST.
- :mod:`~subpixel.applications.faces_split`: the person-level LFW split.
- :mod:`~subpixel.applications.faces_training`: the 4× colour face trainer
  (``subpixel train --faces``).
- :mod:`~subpixel.applications.faces_eval`: the faces experiment on held-out people
  (``subpixel experiment faces``).
"""
