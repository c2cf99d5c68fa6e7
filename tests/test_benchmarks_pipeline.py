"""benchmarks/pipeline.py runs end to end, so that it cannot rot.

One round on the real model; nothing here depends on how fast anything was. The
script checks by itself that the raw and the guarded pipelines agree (the same
distance, the same verdicts for the owner and an impostor, two granted audit events
per guarded verification) and that its JSONL audit log verifies; ``main`` raises if
any of that fails.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from purposeguard.integrations import face_recognition as pfr

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "pipeline.py"

pytestmark = pytest.mark.skipif(
    not pfr.is_available() or importlib.util.find_spec("skimage") is None,
    reason="needs the face-recognition extra and scikit-image",
)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_pipeline", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_quick_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load()
    try:
        assert bench.main(["--quick", "--rounds", "1"]) == 0
    finally:
        sys.modules.pop("benchmarks_pipeline", None)
    out = capsys.readouterr().out
    assert "agreement: raw and guarded give the same distance and verdicts" in out
    for mode in ("known box", "detection"):
        for variant in ("raw face_recognition", "guarded, MemorySink", "guarded, JsonlSink"):
            rows = re.findall(rf"^  {mode} +{re.escape(variant)}", out, re.M)
            assert len(rows) == 2, (mode, variant)  # wall-clock and CPU time
    assert "what the guard adds to one verification" in out
    assert "collects + verify alone" in out
    # One round plus the warm-up, two modes, two events per verification, and the
    # micro-measurement's calls on top: the log holds them all and verifies.
    logged = re.search(r"JSONL audit log: ([\d,]+) events .* verified", out)
    assert logged is not None
    assert int(logged.group(1).replace(",", "")) > 2 * 2 * (1 + bench.WARMUP_ROUNDS)
    assert out.count(" -> MET") + out.count(" -> MISSED") == 4


def test_rounds_must_be_positive() -> None:
    bench = _load()
    try:
        with pytest.raises(SystemExit):
            bench.main(["--rounds", "0"])
    finally:
        sys.modules.pop("benchmarks_pipeline", None)
