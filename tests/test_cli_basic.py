"""The command line's basics: --version, --help, ``python -m subpixel``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import subpixel
from subpixel.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert subpixel.__version__ in out
    assert out.strip() == f"subpixel {subpixel.__version__}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: subpixel" in out
    assert "--version" in out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: subpixel" in capsys.readouterr().out


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-option"]) == 2
    assert "usage: subpixel" in capsys.readouterr().err


def test_python_dash_m_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "subpixel", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: subpixel" in proc.stdout
