"""Jobs: the per-asset chain (one partition per run) and the catalog refresh."""

from __future__ import annotations

import dagster as dg

from .assets.catalog import catalog
from .assets.concept import concept_art
from .assets.export import engine_export
from .assets.generation import generated_model
from .assets.lods import lod_chain

ASSET_CHAIN = [concept_art, generated_model, lod_chain, engine_export]

asset_job = dg.define_asset_job(
    "kiln_asset_job",
    selection=dg.AssetSelection.assets(*ASSET_CHAIN),
    description="One game asset end to end: concept art -> generated model -> LOD chain (checked) -> engine export.",
)

catalog_job = dg.define_asset_job(
    "kiln_catalog_job",
    selection=dg.AssetSelection.assets(catalog),
    description="Rebuild catalog.json and the gallery from every published asset.",
)
