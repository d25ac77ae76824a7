"""The catalog rebuilt from the export target alone (over 100 assets), and the gallery in Chromium."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from pipeline.export.catalog import (
    catalog_entry_from_latest,
    collect_latest,
    list_in_catalog,
    rebuild_catalog,
    write_catalog,
)
from pipeline.export.gallery import PER_PAGE
from pipeline.export.profiles import build_profile, level_glbs
from pipeline.export.publish import open_target, publish
from tests import browser
from tests.test_export_profiles import sample_input

ASSETS = 101  # past the 100 partitions where Dagster stops propagating staleness to `catalog`
SMALL_LEVELS = ((6, 12), (4, 8))


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    target = open_target(str(root))
    for n in range(ASSETS):
        inp = sample_input(f"asset-{n:03d}", levels=SMALL_LEVELS, color=(40 + 2 * n, 200 - n, 90), cost=n / 100)
        status = {0: "failed", 1: "unknown"}.get(n % 10, "passed")
        publish(target, inp.asset_id, inp.version, {"web": build_profile(inp, "web")}, level_glbs(inp),
                extra={"validation": {"status": status, "errors": int(status == "failed")}})
    # A later version of one asset: the catalog must list only the latest.
    newer = sample_input("asset-000", levels=SMALL_LEVELS, cost=9.0)
    publish(target, newer.asset_id, newer.version, {"web": build_profile(newer, "web")}, level_glbs(newer))
    rebuild_catalog(target)
    return root


def test_catalog_lists_every_latest_version_per_the_contract(exports):
    catalog = json.loads((exports / "catalog.json").read_text())
    assets = catalog["assets"]
    assert len(assets) == ASSETS and [a["asset_id"] for a in assets] == sorted(a["asset_id"] for a in assets)
    first = assets[0]
    assert first["cost_usd"] == 9.0 and first["validation"] is None  # the newer version
    for asset in assets:
        assert {"asset_id", "version", "source_sha256", "provider", "lods", "exports"} <= set(asset)
        assert asset["provider"] == "local" and asset["source_sha256"] == "r" * 64
        assert [lv["level"] for lv in asset["lods"]] == [0, 1]
        for lv in asset["lods"]:
            assert {"triangles", "error_m", "screen_size", "uri"} <= set(lv)
            data = Path(lv["uri"]).read_bytes()  # that level alone as a GLB
            assert data[:4] == b"glTF" and hashlib.sha256(data).hexdigest() == lv["sha256"]
        web = asset["exports"]["web"]
        assert hashlib.sha256(Path(web["uri"]).read_bytes()).hexdigest() == web["sha256"]
        assert Path(web["uri"]).stat().st_size == web["bytes"]
    # Rebuilding from the target alone gives the same catalog (no state outside the target).
    entries = [catalog_entry_from_latest(x) for x in collect_latest(open_target(str(exports)))]
    assert entries == assets


def _gallery_cards(html: str) -> list[dict]:
    """The cards index.html embeds (the page renders them 48 at a time)."""
    data = re.search(r'<script type="application/json" id="catalog-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(data)


def test_gallery_links_point_at_published_files(exports):
    html = (exports / "index.html").read_text()
    cards = _gallery_cards(html)
    assert [c["id"] for c in cards] == [f"asset-{n:03d}" for n in range(ASSETS)]
    links = [c["preview"] for c in cards] + [lv[4] for c in cards for lv in c["lods"]]
    links += [path for c in cards for _, path in c["files"]]
    assert len(links) >= ASSETS * 5  # preview, 2 LOD GLBs, the web GLB and its manifest per card
    links += re.findall(r'(?:href|src)="([^"]+)"', html.split('<script type="application/json"')[0])
    for link in links:
        assert not link.startswith(("/", "file:")), link  # relative: the folder can move
        assert (exports / link).is_file(), link


@pytest.mark.live
def test_gallery_renders_a_page_of_cards_in_chromium(exports, tmp_path):
    url = (exports / "index.html").as_uri()
    dom = browser.dump_dom(url)
    assert len(re.findall(r'<article class="card" id="asset-asset', dom)) == PER_PAGE
    assert "page 1 of 3 (101 assets)" in dom
    shot = browser.screenshot(url, tmp_path / "gallery.png", size=(1280, 900))
    covered, spread = browser.image_spread(shot.read_bytes())
    assert covered > 0.2 and spread > 10, f"the gallery screenshot looks blank ({covered:.1%}, {spread:.1f})"
    cards = _gallery_cards((exports / "index.html").read_text())
    assert sum(c["validation"] == "failed" for c in cards) == 10 and sum(c["validation"] == "passed" for c in cards) == 80


def test_write_catalog_refuses_duplicates(tmp_path):
    target = open_target(str(tmp_path))
    entry = {"asset_id": "a", "version": "1", "lods": [], "exports": {}}
    with pytest.raises(ValueError, match="twice"):
        write_catalog(target, [entry, dict(entry)])


def test_a_new_export_is_listed_in_place_without_a_rebuild(tmp_path):
    """What the export step does after publishing: one entry replaced, the rest as they were."""
    target = open_target(str(tmp_path))
    first = sample_input("asset-a", levels=SMALL_LEVELS)
    publish(target, first.asset_id, first.version, {"web": build_profile(first, "web")}, level_glbs(first))
    assert not list_in_catalog(target, "asset-a"), "no catalog yet: nothing to update in place"
    rebuild_catalog(target, {"asset-a": None, "asset-b": None})
    before = json.loads((tmp_path / "catalog.json").read_text())
    assert [e["asset_id"] for e in before["not_exported"]] == ["asset-b"]

    second = sample_input("asset-b", levels=SMALL_LEVELS, cost=2.5)
    publish(target, second.asset_id, second.version, {"web": build_profile(second, "web")}, level_glbs(second))
    assert list_in_catalog(target, "asset-b")
    after = json.loads((tmp_path / "catalog.json").read_text())
    assert [e["asset_id"] for e in after["assets"]] == ["asset-a", "asset-b"] and after["not_exported"] == []
    assert after["assets"][0] == before["assets"][0]
    assert after["assets"][1]["cost_usd"] == 2.5 and after["status_counts"]["exported"] == 2
    assert "asset-b" in (tmp_path / "index.html").read_text()
    # the in-place update and a full rebuild agree
    rebuild_catalog(target, {"asset-a": None, "asset-b": None})
    assert json.loads((tmp_path / "catalog.json").read_text()) == after
    assert not list_in_catalog(target, "never-published")
