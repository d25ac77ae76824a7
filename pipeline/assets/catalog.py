"""`catalog`: every published asset in one `catalog.json` and a browsable `index.html` gallery."""

import dagster as dg

from ..export.catalog import catalog_entry_from_latest, collect_latest, write_catalog
from ..resources import KilnStorage
from .common import classified_failures, md_table
from .export import engine_export


@dg.asset(
    deps=[engine_export],
    group_name="catalog",
    kinds={"json", "html"},
    code_version="1",
    description=(
        "The studio's catalog: `catalog.json` (the contract in DESIGN.md) and an `index.html` gallery "
        "at the export target, rebuilt from every asset's `latest.json`, so it is complete however many "
        "partitions there are. The `refresh_catalog` sensor re-materializes it after new exports.\n\n"
        "If it fails: check the export target is reachable (S3 credentials/endpoint)."
    ),
)
def catalog(context: dg.AssetExecutionContext, storage: KilnStorage) -> dg.MaterializeResult:
    with classified_failures(context, "catalog"):
        target = storage.export_target()
        entries = [catalog_entry_from_latest(latest) for latest in collect_latest(target)]
        catalog_uri, index_uri = write_catalog(target, entries)
    return dg.MaterializeResult(metadata={
        "asset_count": len(entries),
        "catalog": dg.MetadataValue.path(catalog_uri),
        "gallery": dg.MetadataValue.path(index_uri),
        "assets": md_table(["asset", "version", "provider", "LOD triangles"],
                           [[e["asset_id"], e["version"], e["provider"], " / ".join(str(l["triangles"]) for l in e["lods"])]
                            for e in entries[:50]]),
    })
