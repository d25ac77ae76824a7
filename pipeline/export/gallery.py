"""The gallery: `index.html` (a review tool over every asset) and its 3D viewer.

index.html is one static file: the catalog's cards as compact JSON inside the page, rendered 48 to
a page by a few lines of script, with a search by asset id and a status filter (kept in the URL's
`#q=...&status=...&page=...`, so a filtered view can be linked). Rendering one page of a
1,000-asset catalog touches 48 cards, not 1,000. It works opened from disk.

`_gallery/viewer.html?asset=<asset_id>` is the 3D viewer: it reads the asset's `latest.json`, loads
the web export exactly as shipped (meshopt-compressed, MSFT_lod levels) with three.js'
GLTFLoader + MeshoptDecoder, and shows the concept art beside it. three.js is copied from the
repository's `node_modules` (npm package `three`) into `_gallery/three-<version>/`, and the
concept images the published versions were made from into `_gallery/concepts/<sha256>.png`, so the
viewer needs no network. Browsers load its modules only over HTTP (`make gallery`, or the bucket).

Every link is relative to the target's root, so the folder can move or be served from a bucket.
"""

from __future__ import annotations

import io
import json
import os
import re
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from .publish import ExportTarget
from .status import EXPORTED

INDEX_KEY = "index.html"
GALLERY_DIR = "_gallery"  # starts with "_": never mistaken for an asset folder (asset ids start [a-z0-9])
VIEWER_KEY = f"{GALLERY_DIR}/viewer.html"
PER_PAGE = 48
CONCEPT_PX = 768  # concept art is shown beside the viewer at up to this size
ROOT = Path(__file__).resolve().parents[2]
# three.js entry points the viewer imports; the rest of the module graph is followed from these
THREE_ENTRIES = ("build/three.module.js", "examples/jsm/controls/OrbitControls.js",
                 "examples/jsm/loaders/GLTFLoader.js", "examples/jsm/libs/meshopt_decoder.module.js")
_IMPORT_RE = re.compile(r"""(?:\bimport|\bexport)\s*(?:[\w*{}\s,$]+from\s*)?['"]([^'"]+)['"]""")


# ----------------------------------------------------------------------------------------------
# three.js, copied next to the gallery


def three_dir() -> Path | None:
    """The `three` npm package: $KILN_THREE_DIR, else the repository's node_modules/three."""
    found = Path(os.environ.get("KILN_THREE_DIR") or ROOT / "node_modules" / "three")
    return found if (found / "package.json").is_file() else None


def three_files(package: Path) -> dict[str, bytes]:
    """The viewer's three.js files (relative path -> bytes): the entry points and every module they
    import, followed through the package (bare `three` is build/three.module.js)."""
    files: dict[str, bytes] = {}
    pending = list(THREE_ENTRIES)
    while pending:
        rel = pending.pop()
        if rel in files or not (package / rel).is_file():
            continue
        data = (package / rel).read_bytes()
        files[rel] = data
        for spec in _IMPORT_RE.findall(data.decode("utf-8", "replace")):
            if spec == "three":
                pending.append("build/three.module.js")
            elif spec.startswith("three/addons/"):
                pending.append("examples/jsm/" + spec[len("three/addons/"):])
            elif spec.startswith("."):
                pending.append(os.path.normpath(os.path.join(os.path.dirname(rel), spec)))
    return files


def three_version(package: Path) -> str:
    return json.loads((package / "package.json").read_text())["version"]


def write_viewer(target: ExportTarget, package: Path | None = None) -> str | None:
    """three.js and viewer.html under `_gallery/`; the viewer's key, or None without three.js."""
    package = package or three_dir()
    if package is None:
        return None
    folder = f"three-{three_version(package)}"
    for rel, data in sorted(three_files(package).items()):
        key = f"{GALLERY_DIR}/{folder}/{rel}"
        if not target.exists(key):
            target.write_immutable(key, data, "text/javascript")
    page = (Path(__file__).with_name("viewer.html").read_text()
            .replace("__THREE__", folder))
    target.write(VIEWER_KEY, page.encode("utf-8"), "text/html; charset=utf-8")
    return VIEWER_KEY


def concept_key(sha256: str) -> str:
    return f"{GALLERY_DIR}/concepts/{sha256}.png"


def write_concept_images(target: ExportTarget, shas: list[str], load) -> int:
    """Each concept image (by its sha256) as a PNG of at most CONCEPT_PX beside the viewer, once.
    `load(sha)` returns the original bytes or None (not in the store); returns how many were written."""
    from PIL import Image

    written = 0
    for sha in dict.fromkeys(shas):
        key = concept_key(sha)
        if target.exists(key):
            continue
        data = load(sha)
        if data is None:
            continue
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGBA")
            img.thumbnail((CONCEPT_PX, CONCEPT_PX))
            out = io.BytesIO()
            img.save(out, "PNG", optimize=True)
        written += target.write_immutable(key, out.getvalue(), "image/png")
    return written


# ----------------------------------------------------------------------------------------------
# index.html


def _path(item: dict[str, Any] | None) -> str | None:
    return (item or {}).get("path") or (item or {}).get("uri")


def _validation(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("status", value.get("passed"))
    if isinstance(value, bool):
        return "passed" if value else "failed"
    return str(value) if value else "unknown"


def card_data(entry: dict[str, Any], viewer: bool) -> dict[str, Any]:
    """What one card shows, compact (the page embeds one of these per asset)."""
    last = entry.get("last_attempt") or {}
    files = []
    for profile, info in (entry.get("exports") or {}).items():
        if _path(info):
            files.append([profile, _path(info)])
        if info.get("manifest"):
            files.append([f"{profile} manifest", info["manifest"]])
    has_version = bool(entry.get("version"))
    return {
        "id": entry["asset_id"],
        "status": entry.get("status", EXPORTED),
        "reason": last.get("reason") or entry.get("reason"),
        "stage": last.get("stage"),
        "at": last.get("at"),
        "version": entry.get("version"),
        "provider": entry.get("provider"),
        "cost": entry.get("cost_usd"),
        "category": entry.get("category"),
        "validation": _validation(entry.get("validation")) if has_version else None,
        "preview": entry.get("preview_path") or entry.get("preview_uri"),
        "lods": [[lv["level"], lv.get("triangles"), lv.get("error_m"), lv.get("screen_size"), _path(lv),
                  lv.get("silhouette_px"), lv.get("shading_diff"), lv.get("normal_map_baked")]
                 for lv in entry.get("lods", [])],
        "files": files,
        "viewer": f"{VIEWER_KEY}?asset={entry['asset_id']}" if viewer and has_version else None,
    }


_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln catalog ($count assets)</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #16181d; color: #e6e6e6; }
  header { padding: 12px 24px; background: #20232a; display: flex; flex-wrap: wrap; gap: 8px 20px; align-items: center; }
  h1 { margin: 0; font-size: 20px; }
  header input, header select, header button { font: inherit; background: #2c313a; color: #e6e6e6; border: 1px solid #444b57; border-radius: 4px; padding: 3px 8px; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 16px; padding: 16px 24px; }
  .card { background: #22262e; border-radius: 8px; overflow: hidden; display: flex; flex-direction: column; }
  .card img, .card .nopreview { width: 100%; height: 220px; object-fit: contain; background: #2c313a; display: block; }
  .card .nopreview { display: flex; align-items: center; justify-content: center; color: #888; }
  .body { padding: 10px 12px 12px; }
  h2 { margin: 0 0 4px; font-size: 16px; }
  .meta { color: #aab; font-size: 12px; margin-bottom: 6px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px; font-weight: 600; }
  .passed, .exported { background: #1f6f3f; } .failed { background: #8a2630; } .unknown, .unchecked, .warning { background: #5a5a2a; }
  .never_exported { background: #4a4f5a; }
  .attempt { font-size: 12px; margin: 6px 0; padding: 4px 6px; border-radius: 4px; background: #3a2328; }
  .attempt.never_exported { background: #2c313a; }
  table { width: 100%; border-collapse: collapse; font-size: 12px; margin: 6px 0; }
  th, td { text-align: right; padding: 2px 4px; border-bottom: 1px solid #333a44; }
  th:first-child, td:first-child { text-align: left; }
  a { color: #8cc4ff; }
  .files a { margin-right: 8px; }
  .empty { padding: 24px; color: #aab; }
</style>
</head>
<body>
<header>
  <h1>Kiln catalog</h1>
  <div class="meta">$count assets ($summary) &middot; <a href="catalog.json">catalog.json</a>$viewer_note<span id="fromdisk" hidden>
    &middot; opened from disk: the 3D viewer needs HTTP (<code>make gallery</code>)</span></div>
  <label>asset <input id="search" type="search" placeholder="search by asset id" autocomplete="off"></label>
  <label>status <select id="status">
    <option value="">all</option><option value="exported">exported</option>
    <option value="failed">failed</option><option value="never_exported">never exported</option>
  </select></label>
  <span><button id="prev">&larr;</button> <span id="pageinfo"></span> <button id="next">&rarr;</button></span>
</header>
<main id="assets"></main>
<noscript><p class="empty">The gallery needs JavaScript; catalog.json lists every asset.</p></noscript>
<script type="application/json" id="catalog-data">$data</script>
<script>
(function () {
  'use strict';
  const started = performance.now();
  const ASSETS = JSON.parse(document.getElementById('catalog-data').textContent);
  const PER_PAGE = $per_page;
  const main = document.getElementById('assets');
  const search = document.getElementById('search'), status = document.getElementById('status');
  const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
  const num = (v, digits) => v == null ? '&ndash;' : esc(digits == null ? Number(v).toLocaleString('en-US') : Number(v).toFixed(digits));
  const state = { q: '', status: '', page: 1 };

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    state.q = (h.get('q') || '').toLowerCase();
    state.status = h.get('status') || '';
    state.page = Math.max(1, parseInt(h.get('page') || '1', 10) || 1);
    search.value = state.q; status.value = state.status;
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (state.q) h.set('q', state.q);
    if (state.status) h.set('status', state.status);
    if (state.page > 1) h.set('page', state.page);
    const next = h.toString();
    if (location.hash.slice(1) !== next) history.replaceState(null, '', next ? '#' + next : location.pathname + location.search);
  }
  function attempt(a) {
    if (a.status === 'failed') {
      return '<div class="attempt failed">last attempt failed' + (a.stage ? ' in ' + esc(a.stage) : '') +
        (a.at ? ' at ' + esc(a.at) : '') + (a.version ? ' (the last good version below is still published)' : '') +
        ': ' + esc(a.reason) + '</div>';
    }
    if (a.status === 'never_exported') return '<div class="attempt never_exported">never exported: ' + esc(a.reason) + '</div>';
    return '';
  }
  function card(a) {
    const image = a.preview ? '<img src="' + esc(a.preview) + '" alt="' + esc(a.id) + ' preview" loading="lazy">'
                            : '<div class="nopreview">no published version</div>';
    const pic = a.viewer ? '<a href="' + esc(a.viewer) + '" title="open in the 3D viewer">' + image + '</a>' : image;
    let html = '<article class="card" id="asset-' + esc(a.id) + '" data-asset-id="' + esc(a.id) + '" data-status="' + esc(a.status) + '">' +
      pic + '<div class="body"><h2>' + esc(a.id) + '</h2>';
    if (a.version) {
      html += '<div class="meta">version ' + esc(a.version) + ' &middot; ' + esc(a.provider || 'unknown provider') + ' &middot; ' +
        (a.cost == null ? '&ndash;' : '$$' + Number(a.cost).toFixed(2)) + (a.category ? ' &middot; ' + esc(a.category) : '') + '</div>';
    }
    html += '<span class="badge ' + esc(a.status) + '">' + esc(a.status.replace('_', ' ')) + '</span> ';
    if (a.validation) html += '<span class="badge ' + esc(a.validation) + '">validation: ' + esc(a.validation) + '</span>';
    html += attempt(a);
    if (a.lods.length) {
      html += '<table><thead><tr><th>level</th><th>triangles</th><th>error mm</th><th>screen</th>' +
        '<th title="rendered at its switch screen size beside the source (1080p): mean outline displacement in pixels">outline px</th>' +
        '<th title="the same renders: mean |RGB| difference, 0-255; * with its baked normal map">shading</th><th></th></tr></thead><tbody>' +
        a.lods.map((l) => '<tr><td>LOD' + esc(l[0]) + '</td><td>' + num(l[1]) + '</td><td>' + (l[2] == null ? '&ndash;' : num(l[2] * 1000, 2)) +
          '</td><td>' + num(l[3], 3) + '</td><td>' + num(l[5], 2) + '</td><td>' + num(l[6], 1) + (l[7] ? '*' : '') +
          '</td><td>' + (l[4] ? '<a href="' + esc(l[4]) + '">glb</a>' : '') + '</td></tr>').join('') +
        '</tbody></table>';
    }
    const links = a.files.map((f) => '<a href="' + esc(f[1]) + '">' + esc(f[0]) + '</a>');
    if (a.viewer) links.unshift('<a class="viewer" href="' + esc(a.viewer) + '">3D viewer</a>');
    return html + '<div class="files">' + links.join(' ') + '</div></div></article>';
  }
  function render() {
    const shown = ASSETS.filter((a) => (!state.status || a.status === state.status) && (!state.q || a.id.includes(state.q)));
    const pages = Math.max(1, Math.ceil(shown.length / PER_PAGE));
    state.page = Math.min(state.page, pages);
    const slice = shown.slice((state.page - 1) * PER_PAGE, state.page * PER_PAGE);
    main.innerHTML = slice.length ? slice.map(card).join('\\n') : '<p class="empty">no asset matches</p>';
    document.getElementById('pageinfo').textContent = 'page ' + state.page + ' of ' + pages + ' (' + shown.length + ' assets)';
    document.getElementById('prev').disabled = state.page <= 1;
    document.getElementById('next').disabled = state.page >= pages;
    document.body.dataset.matching = shown.length;
    writeHash();
  }
  search.addEventListener('input', () => { state.q = search.value.trim().toLowerCase(); state.page = 1; render(); });
  status.addEventListener('change', () => { state.status = status.value; state.page = 1; render(); });
  document.getElementById('prev').addEventListener('click', () => { state.page -= 1; render(); });
  document.getElementById('next').addEventListener('click', () => { state.page += 1; render(); });
  window.addEventListener('hashchange', () => { readHash(); render(); });
  if (location.protocol === 'file:') document.getElementById('fromdisk').hidden = false;
  readHash();
  render();
  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
})();
</script>
</body>
</html>
""")


def render_index(cards: list[dict[str, Any]], counts: dict[str, int], viewer: bool) -> str:
    summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n) or "none"
    # inside <script>, "</" would end the element (and "<!--" change how it is parsed): JSON spells
    # every "<" as \u003c instead
    data = json.dumps(cards, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    note = ("" if viewer else " &middot; 3D viewer unavailable: three.js was not found when the gallery was "
            "written (npm install)")
    return _PAGE.substitute(count=len(cards), summary=escape(summary), data=data, per_page=PER_PAGE,
                            viewer_note=note)


def write_gallery(target: ExportTarget, entries: list[dict[str, Any]], counts: dict[str, int]) -> str:
    """index.html (and the viewer with its three.js) at the target's root; returns the index URI."""
    viewer = write_viewer(target) is not None
    cards = [card_data(e, viewer) for e in entries]
    target.write(INDEX_KEY, render_index(cards, counts, viewer).encode("utf-8"), "text/html; charset=utf-8")
    return target.uri_for(INDEX_KEY)
