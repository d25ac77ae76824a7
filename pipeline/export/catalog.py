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

index.html, the gallery over the same entries, and its 3D viewer are `gallery.py`'s.
"""

from __future__ import annotations

import json
from typing import Any

from .gallery import write_gallery
from .publish import ExportTarget, read_latest
from .status import EXPORTED, FAILED, NEVER_EXPORTED, asset_status, read_status

CATALOG_SCHEMA = 1
CATALOG_KEY = "catalog.json"


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
             "sha256": lv.get("sha256"), "bytes": lv.get("bytes"), "vertices": lv.get("vertices"),
             # rendered at the switch size beside the source (1080p): outline px, mean |RGB| 0-255
             "silhouette_px": lv.get("silhouette_px"), "shading_diff": lv.get("shading_diff"),
             "normal_map_baked": lv.get("normal_map_baked")}
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
        "concept_sha256": list((latest.get("provenance") or {}).get("concept_sha256") or []),
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
    target.write(CATALOG_KEY, data, "application/json")
    index_uri = write_gallery(target, sorted([*entries, *not_exported], key=lambda e: e["asset_id"]),
                              catalog["status_counts"])
    return target.uri_for(CATALOG_KEY), index_uri


def list_in_catalog(target: ExportTarget, asset_id: str) -> bool:
    """Put one just-published asset into the existing catalog.json and gallery (read, replace its
    entry, write), so a new export is listed within its own run instead of the catalog's next one.

    Two exports doing this at once can lose one update (neither holds a lock on the file); the
    full rebuild (`rebuild_catalog`, the `catalog` asset after every export) repairs that. Returns
    False, changing nothing, when there is no catalog yet or the asset has no published version.
    """
    raw, latest = target.read(CATALOG_KEY), read_latest(target, asset_id)
    if raw is None or latest is None:
        return False
    catalog = json.loads(raw)
    entries = [e for e in catalog.get("assets", []) if e["asset_id"] != asset_id]
    not_exported = [e for e in catalog.get("not_exported", []) if e["asset_id"] != asset_id]
    entries.append(catalog_entry_from_latest(latest, read_status(target, asset_id)))
    write_catalog(target, entries, not_exported)
    return True


def rebuild_catalog(target: ExportTarget, concepts: dict[str, str | None] | None = None) -> tuple[str, str, int]:
    """The whole catalog from the target's latest.json and status.json files, plus the concept
    folders' names (`collect_assets`): (catalog_uri, index_uri, count of published assets)."""
    entries, not_exported = collect_assets(target, concepts)
    catalog_uri, index_uri = write_catalog(target, entries, not_exported)
    return catalog_uri, index_uri, len(entries)
