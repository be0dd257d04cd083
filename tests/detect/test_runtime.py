"""Which TFLite runtime the detector loads: LiteRT first, tflite-runtime when LiteRT is missing, and
an error naming both packages when neither imports.

What is proven here, and what is not:
- The selection itself (order, fallback, error) with stand-in modules put in ``sys.modules``: these
  tests need no runtime at all.
- That the detector builds and runs its model through whatever class the fallback hands it, with
  only the Interpreter API that LiteRT and tflite-runtime share: the stand-in
  ``tflite_runtime.interpreter`` delegates to the installed runtime.
- Not that the real tflite-runtime wheel runs these models here: its last release (2.14) is built
  against numpy 1.x and fails to load a model beside numpy 2, which LiteRT requires. On 32-bit ARM,
  where setup.cfg installs tflite-runtime (and numpy < 2) instead of LiteRT, the ``runtime``
  fixture is that wheel and every detector test runs on it.
"""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest

from agent.detect import TFLiteDetector
from agent.detect.tflite import load_interpreter_class
from agent.errors import DetectorError
from agent.types import Box

from .conftest import tiny_cfg


class LiteRT:
    """Stands in for ai_edge_litert.interpreter.Interpreter."""


class TfliteRuntime:
    """Stands in for tflite_runtime.interpreter.Interpreter."""


def installed(monkeypatch: pytest.MonkeyPatch, package: str, interpreter: Any) -> None:
    """``import <package>.interpreter`` finds a module whose ``Interpreter`` is ``interpreter``."""
    module = types.ModuleType(f"{package}.interpreter")
    module.Interpreter = interpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    monkeypatch.setitem(sys.modules, f"{package}.interpreter", module)


def missing(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """``import <package>.interpreter`` raises ImportError, installed or not."""
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.setitem(sys.modules, f"{package}.interpreter", None)


def test_litert_is_preferred_when_both_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, "ai_edge_litert", LiteRT)
    installed(monkeypatch, "tflite_runtime", TfliteRuntime)
    assert load_interpreter_class() is LiteRT


def test_tflite_runtime_when_litert_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    missing(monkeypatch, "ai_edge_litert")
    installed(monkeypatch, "tflite_runtime", TfliteRuntime)
    assert load_interpreter_class() is TfliteRuntime


def test_missing_runtime_names_both_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    missing(monkeypatch, "ai_edge_litert")
    missing(monkeypatch, "tflite_runtime")
    with pytest.raises(DetectorError) as err:
        TFLiteDetector(tiny_cfg())
    assert "ai-edge-litert" in str(err.value) and "tflite-runtime" in str(err.value)


def test_detector_runs_its_model_on_the_fallback_class(monkeypatch: pytest.MonkeyPatch, runtime: Any) -> None:
    built: list[dict[str, Any]] = []

    def fallback(**kw: Any) -> Any:
        built.append(kw)
        return runtime(**kw)

    missing(monkeypatch, "ai_edge_litert")
    installed(monkeypatch, "tflite_runtime", fallback)
    det = TFLiteDetector(tiny_cfg())
    assert [set(kw) for kw in built] == [{"model_path", "num_threads"}]
    img = np.zeros((128, 128, 3), np.uint8)
    img[64:80, 32:48] = 255
    assert [d.box for d in det.detect(img)] == [Box(32, 64, 48, 80)]


def test_importing_the_package_loads_no_runtime() -> None:
    code = "import sys, agent.detect; print(sorted(m for m in sys.modules if 'litert' in m or 'tflite_runtime' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
