"""`engine_export`: engine-ready packages per profile, published as an immutable version."""

import time
from enum import Enum
from typing import Optional

import dagster as dg
from pydantic import Field

from .. import concepts, settings
from ..asset_settings import AssetSettings, describe
from ..checks import GUARDING_CHECK_KEYS
from ..export.catalog import list_in_catalog, rebuild_catalog
from ..export.gallery import write_concept_images
from ..export.profiles import DEFAULT_PROFILES, PROFILES, ExportInput, ExportLevel, build_profile, version_for
from ..export.publish import publish, republish_existing
from ..export.status import EXPORTED, attempt, record_attempt
from ..geometry.glb import read_glb
from ..geometry.render import preview_png
from ..resources import KilnStorage
from ..settings import KILN_VERSION
from .common import FOLLOW_UPSTREAM, classified_failures, game_assets, lineage_metadata, md_table, preview_metadata


ProfileName = Enum("ProfileName", {p: p for p in PROFILES})  # the launchpad offers these


class ExportConfig(dg.Config):
    """Which engine packages to publish for this run."""

    profiles: Optional[list[ProfileName]] = Field(
        default=None,
        description=f"{describe(None, 'profiles').split(' Default')[0]} Default: asset.toml `profiles`, else "
        f"{', '.join(DEFAULT_PROFILES)}.",
    )


@dg.asset(
    partitions_def=game_assets,
    group_name="export",
    kinds={"glb"},
    code_version="1",
    automation_condition=FOLLOW_UPSTREAM,
    description=(
        "Engine-ready packages (web: one meshopt-compressed GLB with MSFT_lod; unity: LOD-group nodes; "
        "unreal: a GLB per level plus UCX collision; godot: LOD0 plus a `-colonly` collision node), each with a "
        "manifest.json and preview, published to KILN_EXPORT_URI under `<asset>/<version>/<profile>/`. "
        "A published version is never overwritten; `latest.json` moves last, and `status.json` records "
        "this attempt (a failure anywhere in the chain is recorded there too, beside the last good "
        "version). Each GLB's asset.extras "
        "carries the provenance back to the concept images.\n\n"
        "If it fails: an S3 error means check credentials/endpoint (nothing was marked published); "
        "an unknown profile is refused before anything is written."
    ),
)
def engine_export(context: dg.AssetExecutionContext, config: ExportConfig, storage: KilnStorage,
                  lod_chain: dict) -> dg.Output[dict]:
    with classified_failures(context, "engine_export", storage):
        return _export(context, config, storage, lod_chain)


def _export(context: dg.AssetExecutionContext, config: ExportConfig, storage: KilnStorage,
            lod_chain: dict) -> dg.Output[dict]:
    asset_id = context.partition_key
    store = storage.blob_store()
    chosen = [p.value for p in config.profiles] if config.profiles else None
    # asset.toml `profiles` were checked against PROFILES by the schema when the concept was loaded
    profiles = list(chosen or AssetSettings.from_json(lod_chain["settings"]).profiles or DEFAULT_PROFILES)
    started = time.monotonic()
    lineage = lod_chain["lineage"]
    # The version is named by the LOD chain's content and the profiles, so an unchanged asset is
    # found already published and nothing is rebuilt or rewritten.
    version = version_for(lineage["lod_sha256"], profiles)
    target = storage.export_target()
    result = republish_existing(target, asset_id, version)
    if result is None:
        result = _build_and_publish(store, target, asset_id, version, profiles, lod_chain,
                                    _validation(context, asset_id))
    # the last attempt succeeded: status.json and latest.json's `last_attempt` say so (no write
    # when this version was already the recorded export)
    record_attempt(target, attempt(asset_id, EXPORTED, version=version, run_id=context.run.run_id))
    listed = _list_in_catalog(context, store, target, asset_id, lod_chain)
    elapsed = time.monotonic() - started

    preview_path = (result.record.get("preview") or {}).get("path")
    preview = target.read(preview_path) if preview_path else None
    exports = {p: {"files": [f for f in result.files if f["profile"] == p]} for p in profiles}
    manifest = {
        "asset_id": asset_id,
        "version": version,
        "profiles": profiles,
        "latest_uri": result.latest_uri,
        "already_published": result.already_published,
        "exports": exports,
        "lineage": {**lineage, "version": version},
    }
    metadata = {
        **(preview_metadata(store, preview, f"{asset_id} LOD0") if preview else {}),
        "version": version,
        "profiles": profiles,
        "already_published": result.already_published,
        "files": md_table(["profile", "file", "KB", "sha256"],
                          [[f["profile"], f["uri"], round(f["bytes"] / 1024, 1), f["sha256"][:16]] for f in result.files]),
        "latest": dg.MetadataValue.path(result.latest_uri),
        "export_s": round(elapsed, 3),
        "listed_in_catalog": listed,
        "triangles_per_level": [lv["triangles"] for lv in lod_chain["levels"]],
        **lineage_metadata({**lineage, "version": version}),
    }
    return dg.Output(manifest, metadata=metadata)


def _list_in_catalog(context: dg.AssetExecutionContext, store, target, asset_id: str, lod_chain: dict) -> bool:
    """A dropped folder's export is in catalog.json when its run ends. Backfills skip this (a
    thousand runs rewriting one file): the `catalog` asset's rebuild lists them, as it repairs
    any update lost here. A failure here never fails the export, which is published."""
    if context.run.tags.get("dagster/backfill"):
        return False
    try:
        write_concept_images(target, lod_chain["lineage"]["view_sha256"],
                             lambda sha: store.get(sha) if store.exists(sha) else None)
        if list_in_catalog(target, asset_id):
            return True
        rebuild_catalog(target, concepts.folder_states(settings.concepts_dir()))  # the first export: no catalog yet
        return True
    except Exception as exc:  # noqa: BLE001 - the catalog's own run lists it
        context.log.warning(f"{asset_id}: published, but catalog.json was not updated in this run ({exc}); "
                            "the catalog's next rebuild lists it")
        return False


def _validation(context: dg.AssetExecutionContext, asset_id: str) -> dict:
    """The blocking checks' latest results for this asset, as the gallery and manifests show them.

    `passed` only when every guarding check passed on the materialization the export is built from.
    """
    infos = context.instance.event_log_storage.get_asset_check_partition_info(GUARDING_CHECK_KEYS,
                                                                            partition_keys=[asset_id])
    checks = {}
    for info in infos:
        current = info.latest_target_materialization_storage_id == info.latest_materialization_storage_id
        state = info.latest_execution_status.value.lower()
        checks[info.check_key.name] = state if current else f"{state} (on an older materialization)"
    status = ("passed" if len(checks) == len(GUARDING_CHECK_KEYS) and all(v == "succeeded" for v in checks.values())
              else "failed" if any(v.startswith("failed") for v in checks.values()) else "unchecked")
    return {"status": status, "checks": checks}


def _build_and_publish(store, target, asset_id: str, version: str, profiles: list[str], lod_chain: dict,
                       validation: dict):
    lineage = lod_chain["lineage"]
    level_glbs = {lv["level"]: store.get(lv["glb_sha256"]) for lv in lod_chain["levels"]}
    levels = [ExportLevel(level=lv["level"], model=read_glb(level_glbs[lv["level"]]), triangles=lv["triangles"],
                          error_m=lv["error_m"], screen_size=lv["screen_size"]) for lv in lod_chain["levels"]]
    provenance = {
        "asset_id": asset_id,
        "concept_sha256": lineage["view_sha256"],
        "concept_hash": lineage["concept_hash"],
        "provider": lineage["provider"],
        "provider_model": lineage["provider_model"],
        "job_id": lineage["job_id"],
        "raw_model_sha256": lineage["raw_glb_sha256"],
        "model_sha256": lineage["glb_sha256"],
        "lod_sha256": lineage["lod_sha256"],
        "kiln_version": KILN_VERSION,
    }
    inp = ExportInput(
        asset_id=asset_id,
        version=version,
        levels=levels,
        provenance=provenance,
        preview_png=preview_png(levels[0].model, 512),
        side_by_side_png=store.get(lod_chain["side_by_side_sha256"]) if lod_chain.get("side_by_side_sha256") else b"",
        provider=lod_chain["provider"],
        cost_usd=float(lod_chain["cost_usd"]),
        category=lod_chain["category"],
    )
    files = {profile: build_profile(inp, profile) for profile in profiles}
    return publish(target, asset_id, version, files, level_glbs, source_sha256=lineage["concept_hash"],
                   extra={**_latest_extra(lod_chain, provenance), "validation": validation})


def _latest_extra(lod_chain: dict, provenance: dict) -> dict:
    return {
        "provider": lod_chain["provider"],
        "cost_usd": lod_chain["cost_usd"],
        "category": lod_chain["category"],
        "provenance": provenance,
        "lods": [{**{k: lv[k] for k in ("level", "triangles", "error_m", "screen_size")}, **_rendered(lv)}
                 for lv in lod_chain["levels"]],
    }


def _rendered(level: dict) -> dict:
    """The level rendered at its switch size beside the source (lod_chain's `rendered`): mean outline
    displacement in pixels and shading difference (mean |RGB| 0-255), and whether it ships a bake."""
    r = level.get("rendered")
    if not r:
        return {}
    return {"silhouette_px": r["silhouette_px"], "shading_diff": r["shading"], "normal_map_baked": r["bake_used"]}
