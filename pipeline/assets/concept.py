"""`concept_art`: the concept folder of one game asset, read, checked and stored by content hash."""

import dagster as dg

from .. import concepts, settings
from ..concepts import SETTINGS_FILE, Concept
from ..providers import ImageInput, ProviderError, make_provider
from ..resources import KilnStorage
from .common import bad_data, classified_failures, game_assets, lineage_metadata, md_table, preview_metadata


@dg.asset(
    partitions_def=game_assets,
    group_name="concepts",
    kinds={"image"},
    code_version="1",
    description=(
        "The concept folder `concepts/<asset_id>/`: 1-5 views in file-name order (the first seeds the "
        "materials), an optional `model.glb` to import and an optional `asset.toml`. Every file is "
        "checked and stored in the blob store by sha256; the data version is the folder's content hash, "
        "so changed art marks everything downstream stale.\n\n"
        "Every asset.toml key is checked against its schema (README's table) and the provider's options "
        "by the provider itself, before anything is generated or uploaded.\n\n"
        "If it fails: the one-line error names the folder, the file and the field, and says what is "
        "accepted. Fix or remove that file (corrupt or non-image files, more than 5 images, an invalid "
        "asset.toml or model.glb) and re-materialize. Bad data is never retried."
    ),
)
def concept_art(context: dg.AssetExecutionContext, storage: KilnStorage) -> dg.Output[dict]:
    asset_id = context.partition_key
    folder = settings.concepts_dir() / asset_id
    with classified_failures(context, "concept_art", storage):
        try:
            concept = concepts.load(folder)
        except concepts.ConceptError as exc:
            raise bad_data(asset_id, str(exc)) from None
        except OSError as exc:
            raise bad_data(asset_id, f"concept folder {folder} cannot be read ({exc.strerror or type(exc).__name__}); "
                           "check that it exists and is readable") from None
        check_provider_options(concept)
        return _store_concept(storage, concept)


def check_provider_options(concept: Concept) -> None:
    """The provider's own params() on this concept: a bad `[options]` value fails before any upload."""
    provider = concept.settings.provider_for(concept.model_glb is not None)
    images = tuple(ImageInput(v.name, v.data, v.sha256, v.mime_type, v.has_alpha) for v in concept.views)
    request = concept.settings.generation_request(concept.asset_id, images, concept.model_glb)
    try:
        make_provider(provider, options=dict(concept.settings.options)).params(request)
    except ProviderError as exc:
        text = str(exc).removeprefix(f"asset {concept.asset_id}: ")
        raise bad_data(concept.asset_id, f"concept folder {concept.path}: file {SETTINGS_FILE}: provider {provider}, "
                       f"[options]: {text}") from None
    except (TypeError, ValueError) as exc:  # a provider that converts before it checks
        raise bad_data(concept.asset_id, f"concept folder {concept.path}: file {SETTINGS_FILE}: provider {provider}, "
                       f"[options]: {exc}") from None


def _store_concept(storage: KilnStorage, concept: Concept) -> dg.Output[dict]:
    asset_id, folder = concept.asset_id, concept.path
    store = storage.blob_store()
    views = []
    for view in concept.views:
        sha = store.put(view.data, view.mime_type)
        views.append({"file": view.name, "sha256": sha, "mime_type": view.mime_type,
                      "width": view.width, "height": view.height, "has_alpha": view.has_alpha})
    model_sha = store.put(concept.model_glb, "model/gltf-binary") if concept.model_glb else None

    manifest = {
        "asset_id": asset_id,
        "folder": str(folder),
        "content_hash": concept.content_hash,
        "views": views,
        "model_glb_sha256": model_sha,
        "settings": concept.settings.to_json(),
    }
    metadata: dict = {
        **(preview_metadata(store, _as_png(concept.views[0].data), f"{asset_id} front view") if concept.views else {}),
        "content_hash": concept.content_hash,
        "views": md_table(["view", "file", "size", "alpha", "sha256"],
                          [[i, v["file"], f"{v['width']}x{v['height']}", v["has_alpha"], v["sha256"][:16]]
                           for i, v in enumerate(views)]) if views else "none",
        "view_count": len(views),
        "source_sha256": [v["sha256"] for v in views] + ([model_sha] if model_sha else []),
        "model_glb_sha256": model_sha or "none",
        "settings": dg.MetadataValue.json(concept.settings.to_json()),
        "folder": dg.MetadataValue.path(str(folder)),
        **lineage_metadata({"concept_hash": concept.content_hash, "view_sha256": [v["sha256"] for v in views]}),
    }
    return dg.Output(manifest, data_version=dg.DataVersion(concept.content_hash), metadata=metadata)


def _as_png(data: bytes) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGBA")
        img.thumbnail((256, 256))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()
