"""`generated_model`: the 3D model for one game asset, from a provider, normalized for the LOD chain."""

import dataclasses
import json
import time
from enum import Enum
from typing import Optional

import dagster as dg
from pydantic import Field

from ..asset_settings import SEED_MAX, AssetSettings, describe
from ..categories import category as category_defaults
from ..geometry.glb import GlbError, read_glb, write_glb
from ..geometry.normalize import NormalizeError, normalize
from ..geometry.render import preview_png
from ..providers import PROVIDERS, ImageInput, ProviderError, make_provider
from ..providers.runner import SpendBudget, generate
from ..pools import provider_slot
from ..resources import KilnStorage
from .common import (FOLLOW_UPSTREAM, bad_data, bounds_metadata, classified_failures, game_assets, lineage_metadata,
                     one_line, preview_metadata)


ProviderName = Enum("ProviderName", {name: name for name in PROVIDERS})  # the launchpad offers these
# (a renamed provider, e.g. `neural4d`, is not offered; in asset.toml it fails with a pointer to the new name)


class GenerateConfig(dg.Config):
    """What an artist changes when re-generating one asset from the launchpad.

    Choices are enums, so the launchpad refuses a bad provider or tier before the run starts;
    numbers are range-checked before any provider is called.
    """

    provider: Optional[ProviderName] = Field(
        default=None,
        description=f"Provider for this run (overrides asset.toml `provider`). {describe(None, 'provider')}",
    )
    seed: Optional[int] = Field(default=None, ge=0, le=SEED_MAX,
                                description=f"{describe(None, 'seed')} Overrides asset.toml `seed`.")
    base_url: Optional[str] = Field(default=None, description="Provider base URL (default: the vendor's, or KILN_<PROVIDER>_BASE_URL).")
    tier: Optional[str] = Field(default=None, description="Quality tier, checked by the provider before any request: "
                                "scenario e.g. `Gen-2.5-Medium` (its default), pixazo `Regular` or `Premium`.")
    resolution: Optional[int] = Field(default=None, ge=16, le=1024,
                                      description="`local` only: voxels along the largest dimension (higher = more triangles).")
    max_spend_usd: float = Field(default=25.0, ge=0.0, description="Budget for paid generations in this run (a backfill shares one budget).")
    force_resubmit: bool = Field(
        default=False,
        description="Pay for a new generation although an earlier one for the same inputs may exist: use it "
        "only when the failure message asks for it (an answer that never came back from a vendor that cannot "
        "be asked, a job the vendor lost, a result file broken twice). Applied once per run (a retried step "
        "resumes the forced job) and recorded in the lineage.")


# Which run-config knobs each provider understands; others would be rejected as unknown options.
TIER_PROVIDERS = ("scenario", "pixazo")

# Transient failures (vendor 5xx on a poll after the client's own retries, a refused-for-now submission)
# are retried by Dagster; a retry never pays twice: an ambiguous submission is in the write-ahead
# intent and is resolved, not resent (pipeline/providers/runner.py). Errors that retrying cannot fix
# (bad art, missing key, out of balance, budget, an unresolved paid submission) are raised with
# allow_retries=False and fail at once with their reason.
GENERATION_RETRY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

@dg.asset(
    partitions_def=game_assets,
    group_name="generation",
    kinds={"glb"},
    code_version="1",
    retry_policy=GENERATION_RETRY,
    automation_condition=FOLLOW_UPSTREAM,
    description=(
        "The game asset's 3D model: generated from the concept views by the chosen provider (`local` "
        "reconstructs offline; vendors are paid per generation and never billed twice for the same "
        "inputs), or the folder's own `model.glb`. Normalized: welded, degenerate triangles and tiny "
        "floating pieces removed, meters, +Y up, pivot at the bottom centre. Each provider runs in its "
        "own concurrency pool `kiln/<provider>`.\n\n"
        "If it fails: read the error. Bad concept art is named by file; a vendor error carries the "
        "vendor's message (check the API key variable and balance); a budget error means raise "
        "`max_spend_usd`. Transient vendor errors are retried twice (15 s, then ~30 s) before the "
        "step fails."
    ),
)
def generated_model(context: dg.AssetExecutionContext, config: GenerateConfig, storage: KilnStorage,
                    concept_art: dict) -> dg.Output[dict]:
    with classified_failures(context, "generated_model", storage):
        return _generate(context, config, storage, concept_art)


def _generate(context: dg.AssetExecutionContext, config: GenerateConfig, storage: KilnStorage,
              concept_art: dict) -> dg.Output[dict]:
    asset_id = context.partition_key
    store = storage.blob_store()
    asset_toml = AssetSettings.from_json(concept_art["settings"])
    cat_name = asset_toml.category
    cat = category_defaults(cat_name)
    model_sha = concept_art.get("model_glb_sha256")
    provider_name = asset_toml.provider_for(bool(model_sha), config.provider.value if config.provider else None)
    options = dict(asset_toml.options)
    if config.tier is not None and provider_name in TIER_PROVIDERS:
        options["tier"] = config.tier
    if config.resolution is not None and provider_name == "local":
        options["resolution"] = config.resolution
    images = tuple(ImageInput(v["file"], store.get(v["sha256"]), v["sha256"], v["mime_type"], v["has_alpha"])
                   for v in concept_art["views"])
    request = asset_toml.generation_request(asset_id, images, store.get(model_sha) if model_sha else None,
                                            seed=config.seed, options=options)
    seed = request.seed
    # A backfill's runs share one budget: the ledger is keyed by the backfill id, else the run id.
    budget = SpendBudget(config.max_spend_usd, store=store,
                         run_id=context.run.tags.get("dagster/backfill") or context.run.run_id)
    started = time.monotonic()
    try:
        provider = make_provider(provider_name, base_url=config.base_url, options=options)
        with provider_slot(context, provider_name) as free_slot:
            gen = generate(provider, request, store, log=context.log.info, budget=budget,
                           force_resubmit=context.run.run_id if config.force_resubmit else None,
                           vendor_done=free_slot)
    except ProviderError as exc:
        text = str(exc).removeprefix(f"asset {asset_id}: ")
        raise dg.Failure(description=one_line(f"asset {asset_id}: concept folder {concept_art['folder']}: {text}"),
                         allow_retries=exc.retryable) from None
    generated_s = time.monotonic() - started

    target_height = asset_toml.height_m or (None if provider_name == "import" else cat.height_m)
    normalized = _normalized(store, asset_id, provider_name, concept_art["folder"], gen.glb, gen.glb_sha256,
                             target_height, asset_toml.import_.skinned)
    sha = normalized["glb_sha256"]
    lineage = {
        "concept_hash": concept_art["content_hash"],
        "view_sha256": [v["sha256"] for v in concept_art["views"]],
        "model_glb_sha256": model_sha,
        "provider": provider_name,
        "provider_model": gen.model,
        "job_id": gen.job_id,
        "request_hash": gen.request_hash,
        "params": gen.params,
        "raw_glb_sha256": gen.glb_sha256,
        "glb_sha256": sha,
        "cost_usd": gen.cost_usd,
        "cost_source": gen.cost_source,
        "force_resubmit": gen.force_resubmit,  # the run that deliberately paid over an earlier submission
    }
    manifest = {
        "asset_id": asset_id,
        "category": cat_name,
        "settings": asset_toml.to_json(),
        "glb_sha256": sha,
        "raw_glb_sha256": gen.glb_sha256,
        "provider": provider_name,
        "cost_usd": gen.cost_usd,
        "triangles": normalized["triangles"],
        "vertices": normalized["vertices"],
        "repairs": {k: normalized["report"].get(k, 0) for k in REPAIR_KEYS},
        "bounds_min_m": normalized["bounds_min_m"],
        "bounds_max_m": normalized["bounds_max_m"],
        "lineage": lineage,
    }
    metadata = {
        # the preview first: artists judge by looking
        **preview_metadata(store, store.get(normalized["preview_sha256"]), f"{asset_id} generated model"),
        # one key per fact (the runner's own names are mapped here, not copied beside them)
        "provider": provider_name,
        "provider_model": gen.model,
        **({"provider_tier": gen.tier} if gen.tier else {}),
        "job_id": gen.job_id,
        "reused_previous_generation": gen.reused,
        "resumed_submission": gen.resumed,
        "force_resubmit": bool(gen.force_resubmit),  # the run that paid again is in the lineage
        "cost_usd": dg.MetadataValue.float(float(gen.cost_usd)),
        "cost_source": gen.cost_source,
        "seed": seed if seed is not None else "default",
        "request_hash": gen.request_hash,
        **{f"provider_{k}": v for k, v in (("queue_s", gen.queue_s), ("processing_s", gen.processing_s)) if v is not None},
        "triangles": normalized["triangles"],
        "vertices": normalized["vertices"],
        "raw_triangles": normalized["raw_triangles"],
        "glb_bytes": normalized["bytes"],
        "import_notes": dg.MetadataValue.json(normalized.get("notes", [])),
        "raw_glb_bytes": len(gen.glb),
        **bounds_metadata(normalized["bounds_min_m"], normalized["bounds_max_m"]),
        "normalize": dg.MetadataValue.json(normalized["report"]),
        "dropped_nonfinite_triangles": normalized["report"].get("nonfinite_triangles", 0),
        "generation_s": round(generated_s, 3),
        **{f"provider_{k}": v for k, v in gen.timings.items()},
        "glb_file": dg.MetadataValue.path(store.location(sha)),
        **lineage_metadata(lineage),
    }
    return dg.Output(manifest, metadata=metadata)


NORMALIZE_VERSION = "3"  # bump when normalization's output changes for the same input
REPAIR_KEYS = ("nonfinite_triangles", "nonfinite_share", "nonfinite_uvs", "triangles_in")  # said out loud


def _normalized(store, asset_id: str, provider_name: str, folder: str, raw_glb: bytes, raw_sha: str,
                target_height: float | None, skinned: str = "bind_pose") -> dict:
    """Normalize the provider's GLB once per (asset, model, height, asset.toml `[import] skinned`: a
    skinned or animated model is read as its static bind pose, with a note in the metadata, or
    refused); the result is a content-addressed record. The asset is part of the key because the
    normalized GLB carries its name: two assets made from the same file each get their own."""
    record = f"normalized/{raw_sha}-{asset_id}-{target_height}-{skinned}-{NORMALIZE_VERSION}.json"
    cached = store.get_record(record)
    if cached:
        return json.loads(cached)
    try:
        raw = read_glb(raw_glb, allow_animation=skinned == "bind_pose")
        model, report = normalize(raw, target_height_m=target_height)
    except (GlbError, NormalizeError) as exc:
        source = (f"concept folder {folder}: file model.glb cannot be used" if provider_name == "import"
                  else f"provider {provider_name} returned a model Kiln cannot use")
        raise bad_data(asset_id, f"{source}: {exc}") from None
    model.name = asset_id
    glb = write_glb(model, asset_extras={"asset_id": asset_id, "raw_glb_sha256": raw_sha})
    lo, hi = model.bounds()
    info = {
        "glb_sha256": store.put(glb, "model/gltf-binary"),
        "bytes": len(glb),
        "triangles": model.triangle_count,
        "vertices": model.vertex_count,
        "raw_triangles": raw.triangle_count,
        "notes": list(raw.notes),
        "bounds_min_m": [float(v) for v in lo],
        "bounds_max_m": [float(v) for v in hi],
        "report": _jsonable(report),
        "preview_sha256": store.put(preview_png(model, 256), "image/png"),
    }
    store.put_record(record, json.dumps(info, sort_keys=True).encode())
    return info


def _jsonable(report) -> dict:
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    return dict(report) if isinstance(report, dict) else {"report": str(report)}
