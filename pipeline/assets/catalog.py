"""`catalog`: every asset in one `catalog.json` and a browsable `index.html` gallery."""

import dagster as dg

from .. import concepts, settings
from ..export.catalog import collect_assets, status_counts, write_catalog
from ..export.gallery import write_concept_images
from ..resources import KilnStorage
from .common import classified_failures, md_table
from .export import engine_export


@dg.asset(
    deps=[engine_export],
    group_name="catalog",
    kinds={"json", "html"},
    code_version="2",
    description=(
        "The studio's catalog: `catalog.json` (format in README's *Catalog and gallery*) and an `index.html` "
        "gallery at the export target, rebuilt from every asset's `latest.json` (the last good version) "
        "and `status.json` (the last attempt: exported, or failed with its reason and when), plus every "
        "concept folder never exported; so it is complete however many partitions there are. The "
        "`refresh_catalog` sensor re-materializes it after new exports and failed runs.\n\n"
        "If it fails: check the export target is reachable (S3 credentials/endpoint)."
    ),
)
def catalog(context: dg.AssetExecutionContext, storage: KilnStorage) -> dg.MaterializeResult:
    with classified_failures(context, "catalog"):
        target = storage.export_target()
        entries, not_exported = collect_assets(target, concepts.folder_states(settings.concepts_dir()))
        store = storage.blob_store()
        # the concept art each published version was made from, beside the 3D viewer
        copied = write_concept_images(target, [sha for e in entries for sha in e["concept_sha256"]],
                                      lambda sha: store.get(sha) if store.exists(sha) else None)
        catalog_uri, index_uri = write_catalog(target, entries, not_exported)
    troubled = [e for e in entries if e["status"] != "exported"] + not_exported
    return dg.MaterializeResult(metadata={
        "asset_count": len(entries),
        **{f"{name}_count": n for name, n in status_counts(entries, not_exported).items()},
        "catalog": dg.MetadataValue.path(catalog_uri),
        "gallery": dg.MetadataValue.path(index_uri),
        "concept_images_copied": copied,
        "not_exported_or_failed": md_table(
            ["asset", "status", "stage", "why", "when"],
            [[e["asset_id"], e["status"], (e.get("last_attempt") or {}).get("stage") or "-",
              ((e.get("last_attempt") or {}).get("reason") or e.get("reason") or "-")[:120],
              (e.get("last_attempt") or {}).get("at") or "-"] for e in troubled[:20]]),
        "assets": md_table(["asset", "status", "version", "provider", "LOD triangles"],
                           [[e["asset_id"], e["status"], e["version"], e["provider"],
                             " / ".join(str(l["triangles"]) for l in e["lods"])] for e in entries[:30]]),
    })
