"""`lod_chain`: decimated, optimized LOD levels with measured error and switch distances."""

import dataclasses
import hashlib
import json
import time
from typing import Optional

import dagster as dg
from pydantic import Field

from ..asset_settings import (LOD0_MAX_TRIANGLES, LOD0_MIN_TRIANGLES, AssetSettings, LodSettings, SettingsError,
                              describe, parse_settings)
from ..geometry.glb import read_glb, write_glb
from ..geometry.lod import CATEGORY_BUDGETS, LodBudget, build_lod_chain
from ..resources import KilnStorage
from .common import FOLLOW_UPSTREAM, bounds_metadata, classified_failures, game_assets, lineage_metadata, md_table

LOD_CODE_VERSION = "2"  # bump when the chain's output changes for the same input and budget


class LodConfig(dg.Config):
    """LOD budget overrides for this run (else asset.toml `[lod]`, else the category's budget).

    Checked by the same schema as asset.toml's `[lod]` section before anything is simplified.
    """

    lod0_triangles: Optional[int] = Field(default=None, ge=LOD0_MIN_TRIANGLES, le=LOD0_MAX_TRIANGLES,
                                          description=describe("lod", "lod0_triangles"))
    ratios: Optional[list[float]] = Field(default=None, description=describe("lod", "ratios"))


def resolve_budget(category: str, toml_lod: LodSettings, config: LodConfig) -> LodBudget:
    """The category's budget, then asset.toml `[lod]`, then the run config (checked like `[lod]`)."""
    base = CATEGORY_BUDGETS.get(category, CATEGORY_BUDGETS["prop"])
    run = {k: v for k, v in (("lod0_triangles", config.lod0_triangles), ("ratios", config.ratios)) if v is not None}
    try:
        run_lod = parse_settings({"lod": run}).lod
    except SettingsError as exc:
        raise SettingsError(f"run config of lod_chain: {str(exc).replace('[lod] ', '')}", exc.fields) from None
    overrides = {k: getattr(lod, k) for lod in (toml_lod, run_lod) for k in ("lod0_triangles", "ratios")
                 if getattr(lod, k) is not None}
    return dataclasses.replace(base, **overrides)


@dg.asset(
    partitions_def=game_assets,
    group_name="lods",
    kinds={"glb"},
    code_version=LOD_CODE_VERSION,
    automation_condition=FOLLOW_UPSTREAM,
    description=(
        "The LOD chain: LOD0 within the category's triangle budget, then each level simplified by "
        "meshoptimizer (attribute-aware; sloppy only for the farthest levels, flagged in metadata), "
        "with vertex cache/overdraw/fetch optimization, textures downscaled per level, the measured "
        "surface error in meters and the screen size at which the level may be shown.\n\n"
        "If a check fails: lower the budget or change the ratios (launchpad `lod_chain` config or "
        "asset.toml `[lod]`), or fix the source model; a failed blocking check stops the export."
    ),
)
def lod_chain(context: dg.AssetExecutionContext, config: LodConfig, storage: KilnStorage,
              generated_model: dict) -> dg.Output[dict]:
    with classified_failures(context, "lod_chain"):
        return _build_chain(context, config, storage, generated_model)


def _build_chain(context: dg.AssetExecutionContext, config: LodConfig, storage: KilnStorage,
                 generated_model: dict) -> dg.Output[dict]:
    asset_id = context.partition_key
    store = storage.blob_store()
    asset_toml = AssetSettings.from_json(generated_model["settings"])
    budget = resolve_budget(generated_model["category"], asset_toml.lod, config)
    budget_json = json.dumps(dataclasses.asdict(budget), sort_keys=True)
    key = hashlib.sha256(f"{generated_model['glb_sha256']}|{budget_json}|{LOD_CODE_VERSION}".encode()).hexdigest()
    record = f"lod_chains/{key}.json"

    started = time.monotonic()
    cached = store.get_record(record)
    if cached:
        levels = json.loads(cached)
        context.log.info(f"reusing the LOD chain built earlier for the same model and budget ({key[:12]})")
    else:
        model = read_glb(store.get(generated_model["glb_sha256"]))
        levels = []
        for lod in build_lod_chain(model, budget):
            lod.model.name = f"{asset_id}_LOD{lod.level}"
            glb = write_glb(lod.model, asset_extras={"asset_id": asset_id, "lod": lod.level})
            levels.append({
                "level": lod.level,
                "glb_sha256": store.put(glb, "model/gltf-binary"),
                "bytes": len(glb),
                "triangles": lod.triangles,
                "vertices": lod.vertices,
                "error_m": float(lod.error_m),
                "error_mean_m": float(lod.error_mean_m),
                "error_estimate_m": float(lod.error_estimate_m),
                "error_limit_m": float(lod.error_limit_m),
                "screen_size": float(lod.screen_size),
                "method": lod.method,
                "texture_size": lod.texture_size,
            })
        store.put_record(record, json.dumps(levels, sort_keys=True).encode())
    elapsed = time.monotonic() - started

    lineage = {**generated_model["lineage"], "lod_key": key, "budget": dataclasses.asdict(budget),
               "lod_sha256": [lv["glb_sha256"] for lv in levels]}
    manifest = {
        "asset_id": asset_id,
        "category": generated_model["category"],
        "settings": generated_model["settings"],
        "provider": generated_model["provider"],
        "cost_usd": generated_model["cost_usd"],
        "source_glb_sha256": generated_model["glb_sha256"],
        "budget": dataclasses.asdict(budget),
        "levels": levels,
        "lineage": lineage,
    }
    metadata = {
        "levels": md_table(
            ["LOD", "triangles", "vertices", "error (mm)", "limit (mm)", "screen size", "method", "texture", "KB"],
            [[lv["level"], lv["triangles"], lv["vertices"], round(lv["error_m"] * 1000, 2),
              round(lv["error_limit_m"] * 1000, 2), round(lv["screen_size"], 3),
              lv["method"], lv["texture_size"] or "-", round(lv["bytes"] / 1024, 1)] for lv in levels]),
        "triangles_per_level": [lv["triangles"] for lv in levels],
        "error_m_per_level": [round(lv["error_m"], 6) for lv in levels],
        "screen_size_per_level": [round(lv["screen_size"], 4) for lv in levels],
        "sloppy_levels": [lv["level"] for lv in levels if lv["method"] == "sloppy"],
        "budget": dg.MetadataValue.json(dataclasses.asdict(budget)),
        "total_bytes": sum(lv["bytes"] for lv in levels),
        **(bounds_metadata(generated_model["bounds_min_m"], generated_model["bounds_max_m"])
           if "bounds_min_m" in generated_model else {}),
        "lod_s": round(elapsed, 3),
        "reused_previous_chain": bool(cached),
        **lineage_metadata(lineage),
    }
    return dg.Output(manifest, metadata=metadata)
