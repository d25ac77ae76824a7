"""The catalog of everything exported: `catalog.json` (DESIGN.md's contract) and `index.html`.

Both are rebuilt from the export target alone: every `<asset_id>/latest.json` is a complete
catalog entry (publish writes it last), so the catalog never depends on which partitions a run
happened to touch and stays correct however many assets there are.

index.html is static and self-contained: one card per asset with its preview, LOD table,
validation status, provider and cost, and links to the files. Links are relative to the
catalog's folder, so the gallery works opened from disk, from a copy of the folder, or served
from the bucket.
"""

from __future__ import annotations

import json
from html import escape
from string import Template
from typing import Any

from .publish import ExportTarget, read_latest

CATALOG_SCHEMA = 1
CATALOG_KEY = "catalog.json"
INDEX_KEY = "index.html"


def catalog_entry_from_latest(latest: dict[str, Any]) -> dict[str, Any]:
    """One `assets[]` entry of catalog.json from an asset's latest.json."""
    preview = latest.get("preview") or {}
    return {
        "asset_id": latest["asset_id"],
        "version": latest["version"],
        "source_sha256": latest.get("source_sha256", ""),
        "provider": latest.get("provider", ""),
        "lods": [
            {"level": lv["level"], "triangles": lv.get("triangles"), "error_m": lv.get("error_m"),
             "screen_size": lv.get("screen_size"), "uri": lv.get("uri"), "path": lv.get("path"),
             "sha256": lv.get("sha256"), "bytes": lv.get("bytes"), "vertices": lv.get("vertices")}
            for lv in latest.get("lods", [])
        ],
        "exports": {
            profile: {"uri": info.get("uri"), "sha256": info["sha256"], "bytes": info["bytes"],
                      "path": info.get("path"), "manifest": info.get("manifest")}
            for profile, info in sorted(latest.get("exports", {}).items())
        },
        "preview_uri": preview.get("uri"),
        "preview_path": preview.get("path"),
        "validation": latest.get("validation"),
        "cost_usd": latest.get("cost_usd"),
        "category": latest.get("category", ""),
        "kiln_version": latest.get("kiln_version"),
        "published_at": latest.get("published_at"),
    }


def collect_latest(target: ExportTarget) -> list[dict[str, Any]]:
    """Every asset's latest.json under the target (assets never published are skipped)."""
    found = (read_latest(target, asset_id) for asset_id in target.asset_ids())
    return [latest for latest in found if latest is not None]


def validation_status(validation: Any) -> str:
    """'passed', 'failed', ... from a validation field that is a dict with "status", a bool or a string."""
    if isinstance(validation, dict):
        validation = validation.get("status", validation.get("passed"))
    if isinstance(validation, bool):
        return "passed" if validation else "failed"
    return str(validation) if validation else "unknown"


# ----------------------------------------------------------------------------------------------
# index.html


_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiln catalog ($count assets)</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #16181d; color: #e6e6e6; }
  header { padding: 16px 24px; background: #20232a; }
  h1 { margin: 0; font-size: 20px; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 16px; padding: 16px 24px; }
  .card { background: #22262e; border-radius: 8px; overflow: hidden; display: flex; flex-direction: column; }
  .card img, .card .nopreview { width: 100%; height: 220px; object-fit: contain; background: #2c313a; display: block; }
  .card .nopreview { display: flex; align-items: center; justify-content: center; color: #888; }
  .body { padding: 10px 12px 12px; }
  h2 { margin: 0 0 4px; font-size: 16px; }
  .meta { color: #aab; font-size: 12px; margin-bottom: 6px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px; font-weight: 600; }
  .passed { background: #1f6f3f; } .failed { background: #8a2630; } .unknown, .warning { background: #5a5a2a; }
  table { width: 100%; border-collapse: collapse; font-size: 12px; margin: 6px 0; }
  th, td { text-align: right; padding: 2px 4px; border-bottom: 1px solid #333a44; }
  th:first-child, td:first-child { text-align: left; }
  a { color: #8cc4ff; }
  .files a { margin-right: 8px; }
</style>
</head>
<body>
<header><h1>Kiln catalog</h1><div class="meta">$count assets &middot; <a href="catalog.json">catalog.json</a></div></header>
<main id="assets">
$cards
</main>
</body>
</html>
""")


def _href(item: dict[str, Any] | None, path_key: str = "path", uri_key: str = "uri") -> str | None:
    if not item:
        return None
    return item.get(path_key) or item.get(uri_key)


def _number(value: Any, fmt: str) -> str:
    return "&ndash;" if value is None else escape(format(value, fmt))


def _card(entry: dict[str, Any]) -> str:
    asset = escape(entry["asset_id"])
    preview = entry.get("preview_path") or entry.get("preview_uri")
    image = (f'<img src="{escape(preview)}" alt="{asset} preview" loading="lazy">' if preview
             else '<div class="nopreview">no preview</div>')
    status = validation_status(entry.get("validation"))
    cost = entry.get("cost_usd")
    rows = []
    for lv in entry.get("lods", []):
        href = _href(lv)
        link = f'<a href="{escape(href)}">glb</a>' if href else ""
        error_mm = None if lv.get("error_m") is None else lv["error_m"] * 1000.0
        rows.append(f'<tr><td>LOD{int(lv["level"])}</td><td>{_number(lv.get("triangles"), ",")}</td>'
                    f'<td>{_number(error_mm, ".2f")}</td><td>{_number(lv.get("screen_size"), ".3f")}</td>'
                    f"<td>{link}</td></tr>")
    links = []
    for profile, info in entry.get("exports", {}).items():
        href = _href(info)
        if href:
            links.append(f'<a href="{escape(href)}">{escape(profile)}</a>')
        if info.get("manifest"):
            links.append(f'<a href="{escape(info["manifest"])}">{escape(profile)} manifest</a>')
    return f"""<article class="card" id="asset-{asset}" data-asset-id="{asset}">
  {image}
  <div class="body">
    <h2>{asset}</h2>
    <div class="meta">version {escape(entry["version"])} &middot; {escape(entry.get("provider") or "unknown provider")}
      &middot; {"&ndash;" if cost is None else "$" + escape(f"{cost:.2f}")}{(" &middot; " + escape(entry["category"])) if entry.get("category") else ""}</div>
    <span class="badge {escape(status)}">validation: {escape(status)}</span>
    <table><thead><tr><th>level</th><th>triangles</th><th>error mm</th><th>screen</th><th></th></tr></thead>
    <tbody>{"".join(rows)}</tbody></table>
    <div class="files">{" ".join(links)}</div>
  </div>
</article>"""


def render_index(entries: list[dict[str, Any]]) -> str:
    return _PAGE.substitute(count=len(entries), cards="\n".join(_card(e) for e in entries))


def write_catalog(target: ExportTarget, entries: list[dict[str, Any]]) -> tuple[str, str]:
    """Write catalog.json and index.html at the target's root; returns their URIs.

    `entries` are catalog entries (`catalog_entry_from_latest`); the usual call is
    `write_catalog(t, [catalog_entry_from_latest(x) for x in collect_latest(t)])`.
    """
    entries = sorted(entries, key=lambda e: e["asset_id"])
    ids = [e["asset_id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the catalog lists an asset twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    catalog = {"kiln_catalog": CATALOG_SCHEMA, "count": len(entries), "assets": entries}
    data = json.dumps(catalog, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    target.write(INDEX_KEY, render_index(entries).encode("utf-8"), "text/html; charset=utf-8")
    target.write(CATALOG_KEY, data, "application/json")
    return target.uri_for(CATALOG_KEY), target.uri_for(INDEX_KEY)


def rebuild_catalog(target: ExportTarget) -> tuple[str, str, int]:
    """The whole catalog from the target's latest.json files: (catalog_uri, index_uri, asset count)."""
    entries = [catalog_entry_from_latest(latest) for latest in collect_latest(target)]
    catalog_uri, index_uri = write_catalog(target, entries)
    return catalog_uri, index_uri, len(entries)
