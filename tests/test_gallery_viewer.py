"""The gallery as a review tool, in headless Chromium: statuses with reasons, paging and search over
1,000 assets, and the three.js viewer loading the web export as shipped, level by level."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.export.catalog import rebuild_catalog, write_catalog
from pipeline.export.gallery import PER_PAGE, VIEWER_KEY, three_dir, write_concept_images
from pipeline.export.profiles import build_profile, level_glbs
from pipeline.export.publish import open_target, publish
from pipeline.export.status import EXPORTED, FAILED, attempt, record_attempt
from pipeline.geometry.glb import parse_container
from pipeline.geometry.render import side_by_side
from tests import browser
from tests.test_export_profiles import png, sample_input
from tests.ui import Browser

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[1]
CONCEPT_SHA = "c" * 64  # sample_input's provenance


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    if three_dir() is None:
        pytest.skip("three.js is not installed (npm install; make test does it)")
    root = tmp_path_factory.mktemp("gallery")
    target = open_target(str(root))
    inp = sample_input("crate")
    sheet = io.BytesIO()
    side_by_side([(f"LOD{lv.level}", lv.model) for lv in inp.levels], size=96).save(sheet, format="PNG")
    inp.side_by_side_png = sheet.getvalue()
    publish(target, "crate", inp.version, {"web": build_profile(inp, "web")}, level_glbs(inp))
    record_attempt(target, attempt("crate", EXPORTED, version=inp.version, run_id="r1"))
    # the crate's art was edited and the new art failed: the last good version stays shown
    record_attempt(target, attempt("crate", FAILED, stage="check generated_model_valid",
                                   reason="bounding_box_plausible: the model is 9 m tall. Fix: set the category",
                                   run_id="r2"))
    record_attempt(target, attempt("barrel", FAILED, stage="concept_art", reason="file front.png: not an image",
                                   run_id="r3"))
    write_concept_images(target, [CONCEPT_SHA], lambda sha: png((40, 160, 90), 96))
    rebuild_catalog(target, {"crate": None, "barrel": None, "lamp": None, "Bad Name": "invalid asset id"})
    return root


@pytest.fixture(scope="module")
def page():
    """One Chromium for the module (each start costs seconds on a busy 2-core box)."""
    with Browser(size=(1280, 800)) as opened:  # a common laptop width, as the screenshots show
        yield opened


def _shot(page: Browser, tmp: Path, name: str) -> None:
    """A screenshot, checked not blank; `KILN_SCREENSHOTS=docs/screenshots` refreshes the ones
    docs/artists.md embeds (as in tests/test_live_ui.py)."""
    wanted = os.environ.get("KILN_SCREENSHOTS")
    path = page.screenshot((ROOT / wanted if wanted else tmp) / f"{name}.png")
    covered, spread = browser.image_spread(path.read_bytes())
    assert covered > 0.02 and spread > 5, f"{name}.png looks blank ({covered:.1%} covered, spread {spread:.1f})"


def _open(page: Browser, url: str) -> list[str]:
    """Open a gallery URL (or change its #hash) and return the asset ids of the cards shown."""
    page.goto("about:blank")
    page.goto(url)
    page.wait_for("document.body && document.body.dataset.renderMs", f"the gallery at {url}")
    return page.evaluate("[...document.querySelectorAll('article.card')].map(c => c.dataset.assetId)")


def test_gallery_shows_failed_and_never_exported_assets_with_their_reasons(exports, page):
    url = (exports / "index.html").as_uri()
    assert _open(page, url) == ["Bad Name", "barrel", "crate", "lamp"]
    text = page.evaluate("document.body.innerText")
    assert "last attempt failed in check generated_model_valid" in text and "9 m tall" in text
    assert "still published" in text and "validation: " in text  # crate: its last good version beside the failure
    assert "last attempt failed in concept_art" in text and "not an image" in text  # barrel
    assert "never exported: no export attempt recorded yet" in text  # lamp
    assert "never exported: the folder is skipped: invalid asset id" in text
    links = page.evaluate("[...document.querySelectorAll('a.viewer')].map(a => a.getAttribute('href'))")
    assert links == [f"{VIEWER_KEY}?asset=crate"]
    page.settle()
    _shot(page, exports, "gallery")
    assert _open(page, url + "#status=failed") == ["barrel", "crate"]
    assert _open(page, url + "#status=never_exported&q=lamp") == ["lamp"]


def test_gallery_pages_and_searches_a_thousand_assets(tmp_path, page):
    entries = [{"asset_id": f"asset-{n:04d}", "version": f"v{n}", "provider": "local", "status": EXPORTED,
                "lods": [{"level": 0, "triangles": 1000 + n, "error_m": 0.001, "screen_size": 1.0, "path": "x.glb"}],
                "exports": {"web": {"path": f"asset-{n:04d}/v{n}/web/a.glb", "manifest": None}},
                "preview_path": f"asset-{n:04d}/v{n}/web/preview.png", "validation": {"status": "passed"}}
               for n in range(1000)]
    write_catalog(open_target(str(tmp_path)), entries)
    html = (tmp_path / "index.html").read_text()
    assert len(html) < 400_000, f"index.html is {len(html)} bytes for 1,000 assets"
    url = (tmp_path / "index.html").as_uri()
    assert len(_open(page, url)) == PER_PAGE
    assert "page 1 of 21 (1000 assets)" in page.evaluate("document.body.innerText")
    render_ms = float(page.evaluate("document.body.dataset.renderMs"))
    assert render_ms < 1000, f"the first page of 1,000 assets took {render_ms} ms to render"
    assert _open(page, url + "#page=21") == [f"asset-{n:04d}" for n in range(960, 1000)]
    assert _open(page, url + "#q=asset-012") == [f"asset-{n:04d}" for n in range(120, 130)]
    assert "page 1 of 1 (10 assets)" in page.evaluate("document.body.innerText")
    # typing in the search box filters at once
    page.evaluate("const s = document.getElementById('search'); s.value = 'asset-099'; "
                  "s.dispatchEvent(new Event('input'))")
    assert page.evaluate("[...document.querySelectorAll('article.card')].map(c => c.dataset.assetId)") == [
        f"asset-{n:04d}" for n in range(990, 1000)]


def _frame(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.data_url_png(data_url))).convert("RGB"), np.float32)


def test_viewer_loads_the_web_export_and_shows_every_level(exports, page):
    manifest = json.loads(next((exports / "crate").rglob("web/manifest.json")).read_text())
    shipped, _ = parse_container(next((exports / "crate").rglob("web/*.glb")).read_bytes())
    assert "EXT_meshopt_compression" in shipped["extensionsRequired"]  # so the viewer's decoder is exercised
    started = time.monotonic()
    with browser.PageServer(exports) as server:
        page.goto(f"{server.url}/{VIEWER_KEY}?asset=crate")
        page.wait_for("window.kiln && (window.kiln.loaded || window.kiln.error)", "the viewer to load crate")
        assert page.evaluate("window.kiln.error") is None, page.evaluate("window.kiln.error")
        levels = page.evaluate("window.kiln.levels")
        assert [lv["triangles"] for lv in levels] == [row["triangles"] for row in manifest["lods"]]
        assert [lv["manifest_triangles"] for lv in levels] == [lv["triangles"] for lv in levels]
        assert [(lv["screen_size"], lv["error_m"]) for lv in levels] == [
            (row["screen_size"], row["error_m"]) for row in manifest["lods"]]
        assert page.evaluate("[...document.querySelectorAll('#concepts img')].map(i => i.complete && i.naturalWidth)") == [96]
        page.wait_for("document.querySelector('#sidebyside img') && document.querySelector('#sidebyside img').naturalWidth",
                      "lod_chain's side-by-side comparison beside the model")
        assert page.evaluate("document.querySelector('#sidebyside img').naturalWidth") == 8 + 104 * len(levels)
        assert "last attempt failed" in page.evaluate("document.getElementById('status').innerText")

        frames = []
        for i in range(len(levels)):
            frames.append(_frame(page.evaluate(f"window.kiln.setLevel({i}); window.kiln.snapshot()")))
            text = page.evaluate("document.getElementById('lodinfo').innerText")
            assert f"LOD{i}" in text and f"{levels[i]['triangles']:,} triangles" in text, text
        for i, frame in enumerate(frames):
            covered, spread = browser.image_spread(_png_bytes(frame))
            assert covered > 0.1 and spread > 5, f"LOD{i}'s frame looks blank ({covered:.1%}, {spread:.1f})"
        for i in range(1, len(frames)):
            changed = (np.abs(frames[i] - frames[i - 1]).max(axis=2) > 8).mean()
            assert changed > 0.005, f"LOD{i} renders like LOD{i - 1} ({changed:.2%} of pixels differ)"

        page.evaluate("window.kiln.setLevel(0)")
        lit = frames[0]
        for channel in ("base", "normal", "roughness", "metallic", "occlusion"):
            frame = _frame(page.evaluate(f"window.kiln.setChannel('{channel}'); window.kiln.snapshot()"))
            covered, _ = browser.image_spread(_png_bytes(frame))
            assert covered > 0.1, f"the {channel} view is blank"
            if channel in ("base", "normal"):
                assert (np.abs(frame - lit).max(axis=2) > 8).mean() > 0.01, f"the {channel} view looks lit"
        wire = _frame(page.evaluate("window.kiln.setChannel('lit'); window.kiln.setWireframe(true); window.kiln.snapshot()"))
        assert (np.abs(wire - lit).max(axis=2) > 8).mean() > 0.01, "wireframe changed nothing"
        page.evaluate("window.kiln.setWireframe(false); window.kiln.setLevel(1)")
        page.settle()
        _shot(page, exports, "viewer")
    assert time.monotonic() - started < 30


def _png_bytes(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()
