"""`make demo`'s job on the sample art: every asset exported, every GLB valid, a re-run re-generates nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests import khronos

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "concepts"


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def test_demo_exports_every_sample_and_reruns_without_regenerating(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLES, data / "concepts")
    env = {**os.environ, "KILN_DATA_DIR": str(data), "DAGSTER_HOME": str(tmp_path / "home")}
    for var in ("KILN_STORE_URI", "KILN_EXPORT_URI"):
        env.pop(var, None)

    first = _demo(env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    samples = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    assert len(samples) >= 4
    table = first.stdout
    for asset_id in samples:
        assert any(line.startswith(asset_id) and " local " in line for line in table.splitlines()), table
    assert f"{len(samples)}/{len(samples)} assets exported" in table

    catalog = json.loads((data / "exports" / "catalog.json").read_text())
    assert sorted(a["asset_id"] for a in catalog["assets"]) == samples
    for entry in catalog["assets"]:
        tris = [lv["triangles"] for lv in entry["lods"]]
        assert len(tris) >= 2 and all(a > b for a, b in zip(tris, tris[1:])), (entry["asset_id"], tris)
        assert entry["validation"]["status"] == "passed"

    # every GLB the demo wrote, in the blob store and the exports, passes the Khronos validator
    glbs = sorted((data / "exports").rglob("*.glb"))
    assert len(glbs) >= 4 * len(samples)
    reports = khronos.validate_files(glbs)
    for path in glbs:
        khronos.assert_valid(reports[str(path)], str(path.relative_to(data)))

    # unchanged art: nothing is generated, rebuilt or republished
    blobs_before = sorted(p.name for p in (data / "store").rglob("*") if p.is_file())
    latest_before = {a: (data / "exports" / a / "latest.json").read_bytes() for a in samples}
    second = _demo(env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert sorted(p.name for p in (data / "store").rglob("*") if p.is_file()) == blobs_before
    assert {a: (data / "exports" / a / "latest.json").read_bytes() for a in samples} == latest_before
