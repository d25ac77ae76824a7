"""Looking, not only counting: the source GLB and Kiln's exported LOD0 rendered by three.js in
headless Chromium under the same camera, image-based lighting and a grazing key light (which makes
normal maps show), then compared pixel by pixel.

Metric: the mean absolute difference of the two frames in 8-bit RGB, over the pixels either model
covers (background pixels would dilute it). Threshold: 0.5 levels of 255. Why: the export differs
from the source only by quantization (14-bit positions, 8-bit normals, 16-bit UVs in the web file's
meshopt data), normalization's re-centring (the camera frames each model by its own bounds) and
PNG/JPEG pass-through; measured on AlphaBlendModeTest that costs 0.12 levels, while dropping the
normal map (the broken export below) costs 1.51: the threshold sits 4x above the first and 3x
below the second. The model is mostly flat panels, so a few levels of mean difference is a lot.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from pipeline.export.profiles import ExportInput, ExportLevel, build_profile
from pipeline.geometry.glb import read_glb
from pipeline.geometry.lod import LodBudget, build_lod_chain
from pipeline.geometry.normalize import normalize
from tests import browser

pytestmark = pytest.mark.live

MODEL = "glb/edge-cases/DRx3D__glTF-Sample-Assets-OLD/Models/AlphaBlendModeTest/glTF-Binary/AlphaBlendModeTest.glb"
THRESHOLD = 0.5

PAGE = browser.three_page((512, 384), """\
  const canvas = document.getElementById('view');
  const renderer = new THREE.WebGLRenderer({ canvas, preserveDrawingBuffer: true, antialias: false });
  renderer.toneMapping = THREE.NeutralToneMapping;
  const environment = new THREE.PMREMGenerator(renderer).fromScene(new RoomEnvironment(), 0.04).texture;
  const frames = {};
  for (const name of ['source', 'export', 'broken']) {
    const gltf = await new GLTFLoader().setMeshoptDecoder(MeshoptDecoder).loadAsync(name + '.glb');
    const scene = new THREE.Scene();
    scene.background = new THREE.Color(0x000000);
    scene.environment = environment;
    scene.environmentIntensity = 0.35;
    scene.add(gltf.scene);
    // Each model framed by its own bounds: normalization moves and scales, the view must not.
    const box = new THREE.Box3().setFromObject(gltf.scene);
    const center = box.getCenter(new THREE.Vector3());
    const radius = box.getSize(new THREE.Vector3()).length() / 2;
    const key = new THREE.DirectionalLight(0xffffff, 3.0);  // grazing: bumps catch it or shade
    key.position.copy(center).add(new THREE.Vector3(-1, 0.12, 0.1).multiplyScalar(radius * 4));
    key.target.position.copy(center);
    scene.add(key, key.target);
    const camera = new THREE.PerspectiveCamera(40, 512 / 384, radius / 100, radius * 100);
    camera.position.copy(center).add(new THREE.Vector3(0, 0.35, 1).normalize().multiplyScalar(radius * 2.2));
    camera.lookAt(center);
    renderer.render(scene, camera);
    frames[name] = canvas.toDataURL('image/png');
  }
  report(frames);
""", imports="import { RoomEnvironment } from 'three/addons/environments/RoomEnvironment.js';")


def frame_difference(a: bytes, b: bytes) -> float:
    """Mean absolute RGB difference (0-255) over the pixels either frame covers."""
    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), np.float64)
    covered = (x.max(axis=2) > 3) | (y.max(axis=2) > 3)
    return float(np.abs(x - y)[covered].mean())


def test_exported_lod0_looks_like_the_source_and_a_dropped_normal_map_does_not(testdata, tmp_path):
    data = (testdata / MODEL).read_bytes()
    model, _ = normalize(read_glb(data))
    model.name = "alphablend"
    chain = build_lod_chain(model, LodBudget(lod0_triangles=100_000, ratios=(), screen_sizes=(1.0,)), samples=4_000)

    def web_file(levels) -> bytes:
        inp = ExportInput("alphablend", "test", [ExportLevel(lv.level, lv.model, lv.triangles, 0.0, lv.screen_size)
                                                 for lv in levels])
        return next(f for f in build_profile(inp, "web") if f.role == "glb").data

    lod0 = chain[0].model
    assert any(m.normal_texture is not None for m in lod0.materials)
    broken = dataclasses.replace(chain[0], model=dataclasses.replace(
        lod0, materials=[dataclasses.replace(m, normal_texture=None) for m in lod0.materials]))
    (tmp_path / "source.glb").write_bytes(data)
    (tmp_path / "export.glb").write_bytes(web_file(chain[:1]))
    (tmp_path / "broken.glb").write_bytes(web_file([broken]))
    (tmp_path / "index.html").write_text(PAGE)
    with browser.PageServer(tmp_path) as server:
        # three models with 2K textures on SwiftShader: slow on a shared machine, hence the long timeout
        result = browser.run_page(server, "index.html", size=(600, 450), timeout_s=300)
    assert "error" not in result, result["error"]
    frames = {k: browser.data_url_png(v) for k, v in result.items()}
    for name, png in frames.items():
        (tmp_path / f"{name}.png").write_bytes(png)
        assert browser.image_spread(png)[0] > 0.1, f"the {name} frame is nearly blank"
    good = frame_difference(frames["source"], frames["export"])
    bad = frame_difference(frames["source"], frames["broken"])
    print(f"mean |source - export| = {good:.2f}, mean |source - broken export| = {bad:.2f} (threshold {THRESHOLD})")
    assert good < THRESHOLD, f"the exported LOD0 renders {good:.2f} levels off the source"
    assert bad > THRESHOLD, f"dropping the normal map changed the frame by only {bad:.2f}: the comparison is blind"
