"""Real production GLBs through normalize -> LOD chain -> every export profile: every material slot,
factor, extension and vertex stream of the source is in every file (the material-fidelity table),
and the Khronos validator reports no error on any of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.export.meshopt_ext import decompress_glb
from pipeline.export.profiles import (PROFILES, TANGENTS_OMITTED, TANGENTS_SOURCE, ExportInput, ExportLevel,
                                      build_profile)
from pipeline.geometry.fidelity import differences, row, signature
from pipeline.geometry.glb import read_glb
from pipeline.geometry.lod import LodBudget, build_lod_chain
from pipeline.geometry.normalize import normalize
from tests import khronos

SAMPLES = "glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models"
EDGE = "glb/edge-cases/DRx3D__glTF-Sample-Assets-OLD/Models"
# The real GLBs the issue names (Step1X: one of its two generations, to keep the suite quick).
FILES = {
    "Step1X": "glb/textured/stepfun-ai__Step1X-3D/assets/step/a4663eb7f901e81cf758c6baf788de14.glb",
    "CesiumMilkTruck": f"{SAMPLES}/CesiumMilkTruck/glTF-Binary/CesiumMilkTruck.glb",
    "GlassVaseFlowers": f"{SAMPLES}/GlassVaseFlowers/glTF-Binary/GlassVaseFlowers.glb",
    "AlphaBlendModeTest": f"{EDGE}/AlphaBlendModeTest/glTF-Binary/AlphaBlendModeTest.glb",
    "MultiUVTest": f"{EDGE}/MultiUVTest/glTF-Binary/MultiUVTest.glb",
    "NegativeScaleTest": f"{EDGE}/NegativeScaleTest/glTF-Binary/NegativeScaleTest.glb",
    "SimpleInstancing": f"{EDGE}/SimpleInstancing/glTF-Binary/SimpleInstancing.glb",
    "alien": "glb/textured/bevyengine__bevy/assets/models/AlienCake/alien.glb",
    "cakeBirthday": "glb/textured/bevyengine__bevy/assets/models/AlienCake/cakeBirthday.glb",
    "blub": "glb/textured/adobe__lagrange-test-data/open/core/blub/blub.glb",
    "DenseSphere": "glb/edge-cases/donmccurdy__glTF-Transform/packages/functions/test/in/DenseSphere.glb",
    "Fox": f"{SAMPLES}/Fox/glTF-Binary/Fox.glb",
}
# Small levels and textures: the point is what survives, not how long a big chain takes.
BUDGET = LodBudget(lod0_triangles=4_000, ratios=(0.5, 0.25), screen_sizes=(1.0, 0.2, 0.05))
TEXTURES = (256, 128, 64)


def export_all(name: str, data: bytes) -> tuple[dict, list, dict[str, list]]:
    source = read_glb(data, allow_animation=True)
    model, _ = normalize(source, min_piece_fraction=0.0)  # keep every piece: each one carries a material
    model.name = name.lower()
    chain = build_lod_chain(model, BUDGET, texture_sizes=TEXTURES, samples=4_000)
    inp = ExportInput(asset_id=name.lower(), version="test",
                      levels=[ExportLevel(lv.level, lv.model, lv.triangles, 0.0, lv.screen_size) for lv in chain])
    return signature(source), chain, {p: build_profile(inp, p) for p in PROFILES}


@pytest.mark.parametrize("name", list(FILES))
def test_every_slot_extension_and_stream_reaches_every_profile_and_level(name, testdata, tmp_path):
    source_sig, chain, exports = export_all(name, (testdata / FILES[name]).read_bytes())
    table = [f"{name}: source {row(read_glb((testdata / FILES[name]).read_bytes(), allow_animation=True))}"]
    for lv in chain:
        lost = differences(source_sig, signature(lv.model), simplified=lv.method != "source",
                           materials_may_vanish=lv.level > 0)
        assert not lost, (name, f"LOD{lv.level}", lost)
        table.append(f"  LOD{lv.level} ({lv.method}) {row(lv.model)}")
    to_validate = []
    used = sorted({e for m in source_sig.values() for e in m["extensions"]})
    for profile, files in exports.items():
        manifest = json.loads(next(f for f in files if f.role == "manifest").data)
        assert manifest["fidelity"]["material_extensions"] == {"carried": used, "not_carried": []}, profile
        for lv, stated in zip(chain, manifest["fidelity"]["levels"]):
            if any(m.normal_texture is not None for m in lv.model.materials):
                kept = lv.method == "source" and all(p.tangents is not None for p in lv.model.primitives)
                assert stated["tangents"] == (TANGENTS_SOURCE if kept else TANGENTS_OMITTED), (profile, stated)
        for f in files:
            if f.role != "glb":
                continue
            exported = read_glb(f.data)  # the web file is meshopt-compressed: this reads it back too
            # Unreal writes a file per level; the other profiles' one file holds LOD0 (and maybe more).
            level = int(f.name.rsplit("_LOD", 1)[1].split(".")[0]) if "_LOD" in f.name else 0
            lost = differences(source_sig, signature(exported), simplified=chain[level].method != "source",
                               materials_may_vanish=level > 0)
            assert not lost, (name, profile, f.name, lost)
            table.append(f"  {profile}/{f.name} {row(exported)}")
            path = tmp_path / f"{profile}-{f.name}"
            path.write_bytes(decompress_glb(f.data) if profile == "web" else f.data)
            to_validate.append(path)
    print("\n".join(table))
    for file, report in khronos.validate_files(to_validate).items():
        khronos.assert_valid(report, Path(file).name)
