"""The catalog of every asset: `catalog.json` and the `index.html` gallery.

Both are rebuilt from the export target alone (plus the names of the concept folders): every
`<asset_id>/latest.json` is a complete catalog entry of the last good version (publish writes it
last) and `<asset_id>/status.json` is the asset's last attempt (`status.py`), so the catalog never
depends on which partitions a run happened to touch and stays correct however many assets there are.

catalog.json: `assets` lists every asset with a published version (the public contract: asset_id,
version, source_sha256, provider, lods, exports, ...), each with `status` (`exported`, or `failed`
when the last attempt failed and the last good version is still what is published) and
`last_attempt` (status, at, stage, one-line reason, run_id, version). `not_exported` lists the
assets with no published version: `failed` (with the reason) or `never_exported` (concept art that
no attempt has exported yet, or a folder the sensor skips, with why).

index.html is static and self-contained: one card per asset with its preview, status, LOD table,
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
from .status import EXPORTED, FAILED, NEVER_EXPORTED, asset_status, read_status

CATALOG_SCHEMA = 1
CATALOG_KEY = "catalog.json"
INDEX_KEY = "index.html"


def catalog_entry_from_latest(latest: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    """One `assets[]` entry of catalog.json from an asset's latest.json and its last attempt
    (status.json; latest.json's own `last_attempt` when not given)."""
    preview = latest.get("preview") or {}
    state, last = asset_status(latest, status or latest.get("last_attempt"))
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
        "status": state,
        "last_attempt": last,
    }


NOT_RUN_YET = "no export attempt recorded yet (the new_concept_art sensor or make demo runs it)"


def not_exported_entry(asset_id: str, status: dict[str, Any] | None, skipped: str | None = None) -> dict[str, Any]:
    """A `not_exported[]` entry: an asset with no published version, and why."""
    if status is not None:
        return {"asset_id": asset_id, "status": status["status"], "reason": status.get("reason"),
                "last_attempt": status}
    return {"asset_id": asset_id, "status": NEVER_EXPORTED,
            "reason": f"the folder is skipped: {skipped}" if skipped else NOT_RUN_YET, "last_attempt": None}


def collect_assets(target: ExportTarget, concepts: dict[str, str | None] | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(assets with a published version, assets without) from the export target, over its asset
    folders and `concepts` (concept folder name -> why it is skipped, or None)."""
    concepts = concepts or {}
    exported, not_exported = [], []
    for asset_id in sorted(set(target.asset_ids()) | set(concepts)):
        latest, status = read_latest(target, asset_id), read_status(target, asset_id)
        if latest is not None:
            exported.append(catalog_entry_from_latest(latest, status))
        else:
            not_exported.append(not_exported_entry(asset_id, status, concepts.get(asset_id)))
    return exported, not_exported


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
  .passed, .exported { background: #1f6f3f; } .failed { background: #8a2630; } .unknown, .warning { background: #5a5a2a; }
  .never_exported { background: #4a4f5a; }
  .attempt { font-size: 12px; margin: 6px 0; padding: 4px 6px; border-radius: 4px; background: #3a2328; }
  .attempt.never_exported { background: #2c313a; }
  table { width: 100%; border-collapse: collapse; font-size: 12px; margin: 6px 0; }
  th, td { text-align: right; padding: 2px 4px; border-bottom: 1px solid #333a44; }
  th:first-child, td:first-child { text-align: left; }
  a { color: #8cc4ff; }
  .files a { margin-right: 8px; }
</style>
</head>
<body>
<header><h1>Kiln catalog</h1><div class="meta">$count assets ($summary) &middot; <a href="catalog.json">catalog.json</a></div></header>
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


def _attempt_note(entry: dict[str, Any]) -> str:
    """The last attempt when it is not the version shown: a failure (reason, stage, when) or none yet."""
    status = entry.get("status", EXPORTED)
    if status == EXPORTED:
        return ""
    last = entry.get("last_attempt") or {}
    reason = last.get("reason") or entry.get("reason") or ""
    if status == FAILED:
        where = f' in {escape(last["stage"])}' if last.get("stage") else ""
        when = f' at {escape(last["at"])}' if last.get("at") else ""
        shown = " (the last good version below is still published)" if entry.get("version") else ""
        return f'<div class="attempt failed">last attempt failed{where}{when}{shown}: {escape(reason)}</div>'
    return f'<div class="attempt never_exported">never exported: {escape(reason)}</div>'


def _status_badge(entry: dict[str, Any]) -> str:
    status = entry.get("status", EXPORTED)
    return f'<span class="badge {escape(status)}">{escape(status.replace("_", " "))}</span>'


def _missing_card(entry: dict[str, Any]) -> str:
    asset = escape(entry["asset_id"])
    return f"""<article class="card" id="asset-{asset}" data-asset-id="{asset}" data-status="{escape(entry["status"])}">
  <div class="nopreview">no published version</div>
  <div class="body">
    <h2>{asset}</h2>
    {_status_badge(entry)}
    {_attempt_note(entry)}
  </div>
</article>"""


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
    return f"""<article class="card" id="asset-{asset}" data-asset-id="{asset}" data-status="{escape(entry.get("status", EXPORTED))}">
  {image}
  <div class="body">
    <h2>{asset}</h2>
    <div class="meta">version {escape(entry["version"])} &middot; {escape(entry.get("provider") or "unknown provider")}
      &middot; {"&ndash;" if cost is None else "$" + escape(f"{cost:.2f}")}{(" &middot; " + escape(entry["category"])) if entry.get("category") else ""}</div>
    {_status_badge(entry)} <span class="badge {escape(status)}">validation: {escape(status)}</span>
    {_attempt_note(entry)}
    <table><thead><tr><th>level</th><th>triangles</th><th>error mm</th><th>screen</th><th></th></tr></thead>
    <tbody>{"".join(rows)}</tbody></table>
    <div class="files">{" ".join(links)}</div>
  </div>
</article>"""


def render_index(entries: list[dict[str, Any]], not_exported: list[dict[str, Any]] = ()) -> str:
    counts = status_counts(entries, not_exported)
    summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
    cards = [_card(e) for e in entries] + [_missing_card(e) for e in not_exported]
    return _PAGE.substitute(count=len(entries) + len(not_exported), summary=escape(summary or "none"),
                            cards="\n".join(cards))


def status_counts(entries: list[dict[str, Any]], not_exported: list[dict[str, Any]] = ()) -> dict[str, int]:
    counts = {name: 0 for name in (EXPORTED, FAILED, NEVER_EXPORTED)}
    for entry in [*entries, *not_exported]:
        counts[entry.get("status", EXPORTED)] = counts.get(entry.get("status", EXPORTED), 0) + 1
    return counts


def write_catalog(target: ExportTarget, entries: list[dict[str, Any]],
                  not_exported: list[dict[str, Any]] = ()) -> tuple[str, str]:
    """Write catalog.json and index.html at the target's root; returns their URIs.

    `entries` are catalog entries (`catalog_entry_from_latest`), `not_exported` the assets without
    a published version (`not_exported_entry`); the usual call is `rebuild_catalog`.
    """
    entries = sorted(entries, key=lambda e: e["asset_id"])
    not_exported = sorted(not_exported, key=lambda e: e["asset_id"])
    ids = [e["asset_id"] for e in [*entries, *not_exported]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the catalog lists an asset twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    catalog = {"kiln_catalog": CATALOG_SCHEMA, "count": len(entries), "assets": entries,
               "not_exported": not_exported, "status_counts": status_counts(entries, not_exported)}
    data = json.dumps(catalog, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    target.write(INDEX_KEY, render_index(entries, not_exported).encode("utf-8"), "text/html; charset=utf-8")
    target.write(CATALOG_KEY, data, "application/json")
    return target.uri_for(CATALOG_KEY), target.uri_for(INDEX_KEY)


def rebuild_catalog(target: ExportTarget, concepts: dict[str, str | None] | None = None) -> tuple[str, str, int]:
    """The whole catalog from the target's latest.json and status.json files, plus the concept
    folders' names (`collect_assets`): (catalog_uri, index_uri, count of published assets)."""
    entries, not_exported = collect_assets(target, concepts)
    catalog_uri, index_uri = write_catalog(target, entries, not_exported)
    return catalog_uri, index_uri, len(entries)
