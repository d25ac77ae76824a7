"""The web profile in a real client: three.js (GLTFLoader + MeshoptDecoder) in headless Chromium."""

from __future__ import annotations

import json

import pytest

from pipeline.export.profiles import build_profile
from tests import browser
from tests.test_export_profiles import by_name, sample_input

pytestmark = pytest.mark.live

# The page loads the GLB, walks MSFT_lod itself (three.js has no MSFT_lod support; this is the
# few lines a game's web client writes), builds a THREE.LOD, renders LOD0 and reports back.
PAGE = browser.three_page((384, 384), """\
  const gltf = await new GLTFLoader().setMeshoptDecoder(MeshoptDecoder).loadAsync('model.glb');
  const json = gltf.parser.json;
  const rootIndex = json.nodes.findIndex((n) => n.extensions && n.extensions.MSFT_lod);
  const ids = [rootIndex, ...json.nodes[rootIndex].extensions.MSFT_lod.ids];
  const coverage = json.nodes[rootIndex].extras.MSFT_screencoverage;
  const lod = new THREE.LOD();
  const triangles = [], names = [], positionTypes = [];
  for (let i = 0; i < ids.length; i++) {
    const node = await gltf.parser.getDependency('node', ids[i]);
    let count = 0;
    node.traverse((o) => {
      if (!o.isMesh) return;
      count += o.geometry.index.count / 3;
      positionTypes.push(o.geometry.attributes.position.array.constructor.name);
    });
    triangles.push(count);
    names.push(json.nodes[ids[i]].name);
    lod.addLevel(node, i * 5);
  }
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x202020);
  scene.add(lod);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x303030, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 2.5);
  sun.position.set(2, 3, 4);
  scene.add(sun);

  const box = new THREE.Box3().setFromObject(lod.levels[0].object);
  const center = box.getCenter(new THREE.Vector3());
  const radius = box.getSize(new THREE.Vector3()).length() / 2;
  const camera = new THREE.PerspectiveCamera(45, 1, radius / 100, radius * 100);
  camera.position.copy(center).add(new THREE.Vector3(0.6, 0.4, 1).normalize().multiplyScalar(radius * 2.6));
  camera.lookAt(center);
  scene.updateMatrixWorld();
  camera.updateMatrixWorld();
  lod.update(camera);
  const nearLevel = lod.getCurrentLevel();

  const canvas = document.getElementById('view');
  const renderer = new THREE.WebGLRenderer({ canvas, preserveDrawingBuffer: true });
  renderer.render(scene, camera);
  const png = canvas.toDataURL('image/png');

  camera.position.copy(center).add(new THREE.Vector3(0, 0, 100));
  camera.updateMatrixWorld();
  lod.update(camera);
  report({ triangles, names, coverage, positionTypes, nearLevel, farLevel: lod.getCurrentLevel(),
           size: box.getSize(new THREE.Vector3()).toArray(), png });
""")


def test_threejs_loads_every_level_and_renders(tmp_path):
    inp = sample_input()
    files = by_name(build_profile(inp, "web"))
    manifest = json.loads(files["manifest.json"].data)
    (tmp_path / "model.glb").write_bytes(files["crate.glb"].data)
    (tmp_path / "index.html").write_text(PAGE)
    with browser.PageServer(tmp_path) as server:
        result = browser.run_page(server, "index.html")
    assert "error" not in result, result["error"]
    assert result["triangles"] == [row["triangles"] for row in manifest["lods"]]
    assert result["names"] == ["crate_LOD0", "crate_LOD1", "crate_LOD2"]
    assert result["coverage"] == manifest["engine"]["screen_coverage"]
    assert set(result["positionTypes"]) == {"Uint16Array"}  # quantized data reached the GPU as is
    assert result["nearLevel"] == 0 and result["farLevel"] == 2
    assert result["size"] == pytest.approx([1.0, 1.0, 1.0], abs=0.01)  # the dequantizing transform is right

    png = browser.data_url_png(result["png"])
    (tmp_path / "frame.png").write_bytes(png)
    covered, spread = browser.image_spread(png)
    assert covered > 0.15, f"the frame is nearly blank ({covered:.1%} of pixels differ from the background)"
    assert spread > 10
