"""Compiled parts of subpixel (everything else is in pyproject.toml).

The extensions are optional: without a C compiler the package installs and works, using
PyTorch/numpy code paths for the same results (``subpixel._compiled.built()`` says which were
built).
"""

from setuptools import Extension, setup

C_FLAGS = ["-O3", "-std=c11", "-Wall", "-Wno-unknown-pragmas"]
HEADERS = [
    "src/subpixel/_csrc/buffers.h",
    "src/subpixel/_csrc/parallel.h",
    "src/subpixel/_csrc/isa.h",
    "src/subpixel/_csrc/targets.h",
    "src/subpixel/_csrc/winograd_tiles.h",
]


def kernel(name: str, flags: tuple[str, ...] = ()) -> Extension:
    """``subpixel._<name>`` from ``src/subpixel/_csrc/<name>.c``; skipped if it fails to build."""
    return Extension(
        f"subpixel._{name}",
        [f"src/subpixel/_csrc/{name}.c"],
        depends=HEADERS,
        extra_compile_args=C_FLAGS + list(flags),
        extra_link_args=["-pthread"],
        optional=True,
    )


setup(
    ext_modules=[
        kernel("strided_copy"),
        kernel("pipeline"),
        kernel("conv3x3"),
        kernel("conv_first"),
        # OpenCV dnn_superres's uint8 steps (subpixel.fast); no FP traps: the clamps vectorise
        kernel("opencv_levels", ("-fno-trapping-math",)),
        # a * b + c as one fused multiply-add where the CPU has it (GCC's vector types)
        kernel("winograd", ("-ffp-contract=fast",)),
    ]
)
