"""The Khronos glTF-Validator (npm `gltf-validator`) as the outside judge of every GLB Kiln writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "validate_gltf.mjs"


def available() -> bool:
    return shutil.which("node") is not None and (ROOT / "node_modules" / "gltf-validator").is_dir()


def validate_files(paths: list[Path]) -> dict[str, dict]:
    """Validate GLB files in one node process; returns {path: report}."""
    if not available():
        pytest.fail("gltf-validator is not installed: run `make test` (it runs `npm install`)")
    out = subprocess.run(["node", str(SCRIPT), *map(str, paths)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600, check=True).stdout
    reports = {}
    for line in out.splitlines():
        entry = json.loads(line)
        if "error" in entry:
            raise AssertionError(f"validator crashed on {entry['file']}: {entry['error']}")
        reports[entry["file"]] = entry["report"]
    return reports


def validate_bytes(data: bytes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.glb"
        path.write_bytes(data)
        return validate_files([path])[str(path)]


def errors(report: dict) -> list[dict]:
    return [m for m in report["issues"]["messages"] if m["severity"] == 0]


def assert_valid(data_or_report, what: str = "GLB") -> dict:
    report = validate_bytes(data_or_report) if isinstance(data_or_report, bytes) else data_or_report
    errs = errors(report)
    assert report["issues"]["numErrors"] == 0, f"{what}: Khronos validator errors: {errs[:10]}"
    return report
