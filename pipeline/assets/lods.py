"""`lod_chain`: LOD levels chosen by switch screen size, with error measured against the normalized source, and baked normal maps."""

import base64
import dataclasses
import hashlib
import io
import json
import time
from typing import Optional

import dagster as dg
from PIL import Image
from pydantic import Field

from ..asset_settings import (LOD0_MAX_TRIANGLES, LOD0_MIN_TRIANGLES, AssetSettings, LodSettings, SettingsError,
                              describe, parse_settings)
from ..categories import category as category_row
from ..geometry.lod_look import build_and_judge, look_strip
from ..geometry.glb import read_glb, write_glb
from ..geometry.lod import LodBudget
from ..geometry.render import side_by_side
from ..resources import KilnStorage
from .common import FOLLOW_UPSTREAM, bounds_metadata, classified_failures, game_assets, lineage_metadata, md_table

LOD_CODE_VERSION = "6"  # bump when the chain's output changes for the same input and budget
SIDE_BY_SIDE_PX = 192  # one cell of the source-and-levels comparison in lod_chain's metadata

# asset.toml `[lod]` keys this stage reads (the launchpad's LodConfig has the same names)
LOD_KEYS = ("lod0_triangles", "ratios", "screen_sizes")


class LodConfig(dg.Config):
    """LOD overrides for this run (else asset.toml `[lod]`, else the category's chain).

    Checked by the same schema as asset.toml's `[lod]` section before anything is simplified.
    """

    lod0_triangles: Optional[int] = Field(default=None, ge=LOD0_MIN_TRIANGLES, le=LOD0_MAX_TRIANGLES,
                                          description=describe("lod", "lod0_triangles"))
    ratios: Optional[list[float]] = Field(default=None, description=describe("lod", "ratios"))
    screen_sizes: Optional[list[float]] = Field(default=None, description=describe("lod", "screen_sizes"))


def resolve_budget(category: str, toml_lod: LodSettings, config: LodConfig) -> LodBudget:
    """The category's chain, overridden by asset.toml `[lod]`, overridden by the launchpad (checked
    like `[lod]`).

    Overriding `ratios` alone to another number of levels keeps the category's screen sizes for
    the levels both have and halves the last one for each added level."""
    base = category_row(category).lod
    run = {k: getattr(config, k) for k in LOD_KEYS if getattr(config, k) is not None}
    try:
        run_lod = parse_settings({"lod": run}).lod
    except SettingsError as exc:
        raise SettingsError(f"run config of lod_chain: {str(exc).replace('[lod] ', '')}", exc.fields) from None
    overrides = {k: getattr(lod, k) for lod in (toml_lod, run_lod) for k in LOD_KEYS if getattr(lod, k) is not None}
    for key in ("ratios", "screen_sizes"):
        if key in overrides:
            overrides[key] = tuple(float(r) for r in overrides[key])
    if "ratios" in overrides and "screen_sizes" not in overrides:
        sizes = list(base.screen_sizes[: 1 + len(overrides["ratios"])])
        while len(sizes) < 1 + len(overrides["ratios"]):
            sizes.append(sizes[-1] / 2)
        overrides["screen_sizes"] = tuple(sizes)
    return dataclasses.replace(base, **overrides)


@dg.asset(
    partitions_def=game_assets,
    group_name="lods",
    kinds={"glb"},
    code_version=LOD_CODE_VERSION,
    automation_condition=FOLLOW_UPSTREAM,
    description=(
        "The LOD chain, driven by screen size: each level is shown at and below its switch screen size "
        "(the model's largest side as a fraction of the screen height) and is the cheapest mesh Kiln "
        "finds whose measured error against the normalized source stays under one 1080p pixel there "
        "(meshoptimizer, attribute-aware; sloppy only for the farthest levels, flagged in metadata), "
        "with vertex cache/overdraw/fetch optimization and textures downscaled per level. Triangle "
        "ceilings are what each level should cost: a level that needs more keeps them, and the "
        "`lod_budgets_met` check warns with the deficit. A level that cannot be made cheaper within its "
        "bound is not made (the chain is shorter; `chain_notes` says why).\n\n"
        "Levers (launchpad `lod_chain` config or asset.toml `[lod]`): `screen_sizes` (smaller: a level "
        "is shown smaller, may be coarser, costs less), `lod0_triangles` and `ratios` (the ceilings).\n\n"
        "Levels 1..n get a tangent-space normal map baked from the normalized source on their own UVs; "
        "each level is rendered at its switch size beside the source (1080p, the model's largest side "
        "screen_size x 1080 px tall, one three-quarter camera) with and without the map, and the map ships "
        "only where it lowers the shading difference (`rendered_at_switch_size`: silhouette displacement in "
        "pixels, mean and worst; shading as mean |RGB| 0-255 over the pixels both cover; "
        "`switch_size_strip` shows the pairs). The shipped map is the level's normalTexture, with its "
        "tangents, in the GLB; where the source material has its own normal map, the bake combines its "
        "detail with the geometry's and replaces it (on UVs that cannot carry a bake the level keeps the "
        "source map, downscaled, and `normal_maps` says why). `side_by_side` shows the "
        "source beside every level from one camera (click it for the full image).\n\n"
        "If it fails: the one-line error names the level and the setting; an invalid `[lod]` value is "
        "named with its accepted range (fix asset.toml or the launchpad config), and a model the "
        "simplifier cannot read means re-generating `generated_model`."
    ),
)
def lod_chain(context: dg.AssetExecutionContext, config: LodConfig, storage: KilnStorage,
              generated_model: dict) -> dg.Output[dict]:
    with classified_failures(context, "lod_chain", storage):
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
        levels, notes, *images = json.loads(cached)  # chains recorded before the renders have none
        sheet_sha, strip_sha = (images + [None, None])[:2]
        context.log.info(f"reusing the LOD chain built earlier for the same model and budget ({key[:12]})")
    else:
        model = read_glb(store.get(generated_model["glb_sha256"]))
        levels = []
        chain, bakes = build_and_judge(model, budget)
        notes = chain.notes
        for lod, bake in zip(chain, bakes):
            look = lod.look
            normal_map = None
            if bake is not None:
                written = look.written
                normal_map = {
                    "used": look.bake_used,
                    "notes": bake.notes + [look.reason],
                    "maps": {str(m): store.put(_png(img), "image/png") for m, img in bake.maps.items()},
                    "angle_plain_deg": bake.angle_plain_deg if bake.used else None,
                    "angle_baked_deg": bake.angle_baked_deg if bake.used else None,
                    # rendered at the switch size beside the source: mean |RGB| 0-255, plain vs baked
                    "shading_plain": round(look.plain.shading, 4),
                    "shading_baked": None if look.baked is None else round(look.baked.shading, 4),
                    "in_glb": written,  # materials whose normalTexture is the baked map
                    "tangents": "baked frames (MikkTSpace-style)" if written else None,
                }
            lod.model.name = f"{asset_id}_LOD{lod.level}"
            glb = write_glb(lod.model, asset_extras={"asset_id": asset_id, "lod": lod.level})
            levels.append({
                "level": lod.level,
                "glb_sha256": store.put(glb, "model/gltf-binary"),
                "bytes": len(glb),
                "triangles": lod.triangles,
                "vertices": lod.vertices,
                # every error is against the normalized source (generated_model's GLB), in meters
                "error_reference": "normalized_source",
                "error_m": float(lod.error_m),
                "error_mean_m": float(lod.error_mean_m),
                "error_estimate_m": float(lod.error_estimate_m),
                "error_limit_m": float(lod.error_limit_m),
                "screen_size": float(lod.screen_size),
                "triangle_ceiling": lod.triangle_ceiling,
                "over_ceiling": lod.over_ceiling,
                "searched": [[t, float(e)] for t, e in lod.searched],
                "normal_map": normal_map,
                # at the switch size beside the source (1080p, Kiln's renderer): outline displacement
                # in pixels, shading difference as mean |RGB| 0-255 (geometry.lod_look)
                "rendered": look.to_json(),
                "method": lod.method,
                "texture_size": lod.texture_size,
            })
        sheet_sha = store.put(_side_by_side(model, chain), "image/png")
        strip_sha = store.put(_png_image(look_strip(chain)), "image/png")
        store.put_record(record, json.dumps([levels, notes, sheet_sha, strip_sha], sort_keys=True).encode())
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
        "side_by_side_sha256": sheet_sha,
        "switch_size_strip_sha256": strip_sha,
        "requested_levels": budget.levels,
        "chain_notes": notes,
        "lineage": lineage,
    }
    metadata = {
        "levels": md_table(
            ["LOD", "switch screen size", "triangles", "ceiling", "error vs source (mm)", "bound: 1 px (mm)",
             "method", "texture", "KB"],
            [[lv["level"], round(lv["screen_size"], 3), lv["triangles"], lv["triangle_ceiling"],
              round(lv["error_m"] * 1000, 3), round(lv["error_limit_m"] * 1000, 3),
              lv["method"], lv["texture_size"] or "-", round(lv["bytes"] / 1024, 1)] for lv in levels]),
        "chain_notes": "; ".join(notes) or "every requested level was made",
        **(_image_metadata(store, sheet_sha, "side_by_side", "source and every LOD, one camera") if sheet_sha else {}),
        "rendered_at_switch_size": md_table(
            ["LOD", "px tall", "silhouette px (mean / worst)", "shading 0-255: plain", "baked", "ships"],
            [[lv["level"], round(r["height_px"]), f'{r["silhouette_px"]:.2f} / {r["silhouette_max_px"]:.0f}',
              round(r["shading_plain"], 2), "-" if r["shading_baked"] is None else round(r["shading_baked"], 2),
              "baked map" if r["bake_used"] else "plain maps"]
             for lv in levels if (r := lv.get("rendered"))]),
        **(_image_metadata(store, strip_sha, "switch_size_strip", "each level beside the source at its switch size")
           if strip_sha else {}),
        "normal_maps": md_table(
            ["LOD", "normal map", "normals vs source: plain -> baked (deg)", "why"],
            [[lv["level"], "baked" if lv["normal_map"]["used"] else "plain",
              (f'{lv["normal_map"]["angle_plain_deg"]:.2f} -> {lv["normal_map"]["angle_baked_deg"]:.2f}'
               if lv["normal_map"]["angle_plain_deg"] is not None else "-"),
              "; ".join(lv["normal_map"]["notes"]) or "-"]
             for lv in levels if lv.get("normal_map")]),
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


def _side_by_side(source, chain) -> bytes:
    """The normalized source beside every level, one camera and one frame (Kiln's preview renderer:
    geometry and base colour), so an artist sees at a glance what each level gave up."""
    cells = [(f"source {source.triangle_count:,} tris", source)]
    # a level that is the source's own geometry (LOD0 often) shows the source's render
    cells += [(f"LOD{lod.level} {lod.triangles:,} tris", source if lod.method == "source" else lod.model)
              for lod in chain]
    # zlib level 4, not optimize=True: 9 ms against 104 ms for a 5-cell sheet, 7% larger
    return _png_image(side_by_side(cells, size=SIDE_BY_SIDE_PX))


def _image_metadata(store, sha: str, key: str, alt: str) -> dict[str, dg.MetadataValue]:
    """An image inline (WebP keeps the event small) and its PNG in the blob store."""
    out = io.BytesIO()
    Image.open(io.BytesIO(store.get(sha))).save(out, format="WEBP", quality=80)
    data = base64.b64encode(out.getvalue()).decode()
    return {
        key: dg.MetadataValue.md(f"![{alt}](data:image/webp;base64,{data})"),
        f"{key}_file": dg.MetadataValue.path(store.location(sha)),
    }


def _png(pixels) -> bytes:
    return _png_image(Image.fromarray(pixels, "RGB"))


def _png_image(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=4)
    return out.getvalue()
