"""Compiled parts of subpixel (everything else is in pyproject.toml).

The extensions are optional: without a C compiler the package installs and works, using
PyTorch/numpy code paths for the same results (``subpixel._native.available()`` says which).
"""

from setuptools import Extension, setup

C_FLAGS = ["-O3", "-std=c11", "-Wall", "-Wno-unknown-pragmas"]

setup(
    ext_modules=[
        Extension(
            "subpixel._strided_copy",
            ["src/subpixel/_csrc/strided_copy.c"],
            extra_compile_args=C_FLAGS,
            extra_link_args=["-pthread"],
            optional=True,
        ),
        Extension(
            "subpixel._pipeline",
            ["src/subpixel/_csrc/pipeline.c"],
            extra_compile_args=C_FLAGS,
            extra_link_args=["-pthread"],
            optional=True,
        ),
        Extension(
            "subpixel._conv3x3",
            ["src/subpixel/_csrc/conv3x3.c"],
            extra_compile_args=C_FLAGS,
            extra_link_args=["-pthread"],
            optional=True,
        ),
    ]
)
