"""Concept folders: `concepts/<asset_id>/` with 1-5 views, an optional `model.glb` and `asset.toml`.

Pure functions shared by the sensor (cheap scan, content fingerprint) and the `concept_art` asset
(full load with image validation). Every error names the folder and the file.
"""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .asset_settings import AssetSettings

ASSET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
MAX_VIEWS = 5
MAX_IMAGE_SIDE = 8192
MODEL_FILE = "model.glb"
SETTINGS_FILE = "asset.toml"


class ConceptError(ValueError):
    """A concept folder cannot be used; the message names the folder and the file."""


@dataclass(frozen=True)
class ConceptFiles:
    """What the sensor sees of a folder: which files count, and a hash of their content."""

    asset_id: str
    path: Path
    images: tuple[Path, ...]
    model: Path | None
    settings: Path | None
    content_hash: str
    # The art alone (image and model.glb bytes, not file names or asset.toml): the same art under
    # another folder name is a renamed asset. None for a text-only (prompt) folder.
    art_hash: str | None = None


@dataclass
class View:
    name: str
    data: bytes
    sha256: str
    mime_type: str
    width: int
    height: int
    has_alpha: bool


@dataclass
class Concept:
    asset_id: str
    path: Path
    views: list[View]
    model_glb: bytes | None
    settings: "AssetSettings"
    content_hash: str = ""


# The sensor re-scans every tick; hashing unchanged files again would dominate on big catalogs.
_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    cached = _hash_cache.get(key)
    if cached is None:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        cached = _hash_cache[key] = h.hexdigest()
        if len(_hash_cache) > 100_000:
            _hash_cache.clear()
    return cached


def list_files(folder: Path) -> ConceptFiles:
    """Classify a folder's files; raises ConceptError if it holds nothing Kiln can use."""
    asset_id = folder.name
    if not ASSET_ID_RE.match(asset_id):
        raise ConceptError(
            f"concept folder {folder}: name {asset_id!r} is not a valid asset id "
            f"(lowercase letters, digits, '_' or '-', at most 64 characters, starting with a letter or digit)"
        )
    for entry in (folder, *folder.iterdir()):
        _check_link(entry, folder)
    images = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                          and not p.name.startswith(".")))
    model = folder / MODEL_FILE
    settings = folder / SETTINGS_FILE
    has_model = model.is_file()
    has_settings = settings.is_file()
    if not images and not has_model and not has_settings:
        raise ConceptError(f"concept folder {folder}: empty (no images, no {MODEL_FILE}, no {SETTINGS_FILE})")
    art = {p: file_sha256(p) for p in (*images, *([model] if has_model else []))}
    h = hashlib.sha256()
    for p in (*art, *([settings] if has_settings else [])):
        h.update(p.name.encode() + b"\0" + (art.get(p) or file_sha256(p)).encode() + b"\n")
    art_hash = hashlib.sha256("\n".join(sorted(art.values())).encode()).hexdigest() if art else None
    return ConceptFiles(asset_id, folder, images, model if has_model else None,
                        settings if has_settings else None, h.hexdigest(), art_hash)


def provider_of(files: ConceptFiles) -> str:
    """The provider a folder asks for (asset.toml, else import for a model.glb, else local), for run
    tags and queue limits; an asset.toml that does not parse gets the default, and fails in concept_art."""
    try:
        chosen = read_settings(files.settings, len(files.images))
    except ConceptError:
        from .asset_settings import parse_settings

        chosen = parse_settings({})
    return chosen.provider_for(files.model is not None)


def retirable(existing: set[str], found: list[ConceptFiles], skipped: list[tuple[str, str]],
              concepts_dir: Path) -> list[str]:
    """Partitions whose concept folder is gone. A folder still there but unusable (empty while being
    copied, a bad file) keeps its partition; a missing concepts folder retires nothing (a wrong
    KILN_DATA_DIR or an unmounted share must not empty the instance)."""
    if not concepts_dir.is_dir():
        return []
    present = {f.asset_id for f in found} | {name for name, _ in skipped}
    return sorted(existing - present)


def _check_link(path: Path, folder: Path) -> None:
    """A symbolic link may point within the concepts folder only: nothing else on the machine is read."""
    if not path.is_symlink():
        return
    where = f"concept folder {folder}" if path == folder else f"concept folder {folder}: file {path.name}"
    target = path.resolve()
    root = folder.parent.resolve()
    if not target.exists():
        raise ConceptError(f"{where}: a symbolic link to {target}, which does not exist; replace it with the file")
    if root not in target.parents:
        raise ConceptError(f"{where}: a symbolic link to {target}, outside the concepts folder {root}; "
                           "copy the file into the concept folder instead")


def scan(concepts_dir: Path, progress: Callable[[int, int], None] | None = None
         ) -> tuple[list[ConceptFiles], list[tuple[str, str]]]:
    """All usable concept folders, and (name, reason) for each one skipped; `progress(done, total)`
    after each folder (hashing a studio's art the first time takes a while)."""
    found: list[ConceptFiles] = []
    skipped: list[tuple[str, str]] = []
    if not concepts_dir.is_dir():
        return found, [(str(concepts_dir), "concepts folder does not exist")]
    entries = sorted(e for e in concepts_dir.iterdir() if e.is_dir() and not e.name.startswith("."))
    for done, entry in enumerate(entries, 1):
        try:
            found.append(list_files(entry))
        except ConceptError as exc:
            skipped.append((entry.name, str(exc)))
        if progress:
            progress(done, len(entries))
    return found, skipped


def folder_states(concepts_dir: Path) -> dict[str, str | None]:
    """Every concept folder's name -> why it is skipped (None for a usable folder)."""
    found, skipped = scan(concepts_dir)
    return {**{f.asset_id: None for f in found}, **dict(skipped)}


def read_settings(path: Path | None, image_count: int = 0) -> "AssetSettings":
    """asset.toml parsed and checked against the schema (pipeline.asset_settings); none: the defaults."""
    # imported here: the schema names the export profiles, whose module needs this one's ASSET_ID_RE
    from .asset_settings import SettingsError, parse_settings

    if path is None:
        return parse_settings({})
    where = f"concept folder {path.parent}: file {path.name}"
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except UnicodeDecodeError:
        raise ConceptError(f"{where}: not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConceptError(f"{where}: invalid TOML: {exc}") from None
    try:
        return parse_settings(raw, image_count=image_count)
    except SettingsError as exc:
        raise ConceptError(f"{where}: {exc}") from None


def read_model(path: Path) -> bytes:
    """The folder's model.glb, refused now if Kiln could not take it in (with the GLB's JSON path)."""
    from .geometry.glb import GlbError, read_glb

    where = f"concept folder {path.parent}: file {path.name}"
    data = path.read_bytes()
    if not data:
        raise ConceptError(f"{where}: the file is empty (0 bytes); export the model again as binary glTF (.glb)")
    try:
        # skinned/animated models are judged by the import provider ([import] skinned); here: can it be read
        model = read_glb(data, allow_animation=True)
    except GlbError as exc:
        raise ConceptError(f"{where}: {exc}") from None
    if model.triangle_count == 0:
        raise ConceptError(f"{where}: the model has no triangles (only points, lines or no mesh at all); "
                           "Kiln needs a triangle mesh (glTF mode 4, 5 or 6)")
    return data


def read_view(path: Path) -> View:
    """Read and verify one image; errors name the folder and file."""
    from PIL import Image, UnidentifiedImageError

    where = f"concept folder {path.parent}: file {path.name}"
    data = path.read_bytes()
    if not data:
        raise ConceptError(f"{where}: the file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
            width, height = img.size
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                raise ConceptError(f"{where}: image is {width}x{height}; the limit is {MAX_IMAGE_SIDE} px per side")
            img.load()  # decodes fully: catches truncated or corrupt data
            has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    except UnidentifiedImageError:
        raise ConceptError(f"{where}: not an image Kiln can read (PNG, JPEG or WebP expected)") from None
    except Image.DecompressionBombError:
        raise ConceptError(f"{where}: the image header claims more pixels than any concept image has "
                           f"(the limit is {MAX_IMAGE_SIDE} px per side); the file is corrupt or not concept art") from None
    except ConceptError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types for broken data; all mean the same
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ConceptError(f"{where}: corrupt image ({first}); save it again as PNG, JPEG or WebP") from None
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise ConceptError(f"{where}: image is {width}x{height}, too large")
    mime = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt)
    if mime is None:
        raise ConceptError(f"{where}: format {fmt or 'unknown'} is not PNG, JPEG or WebP")
    return View(path.name, data, hashlib.sha256(data).hexdigest(), mime, width, height, has_alpha)


def load(folder: Path) -> Concept:
    """Fully load and validate a concept folder."""
    files = list_files(folder)
    if len(files.images) > MAX_VIEWS:
        names = ", ".join(p.name for p in files.images)
        raise ConceptError(
            f"concept folder {folder}: {len(files.images)} images ({names}); at most {MAX_VIEWS} views are allowed"
        )
    settings = read_settings(files.settings, len(files.images))
    views = [read_view(p) for p in files.images]
    model = read_model(files.model) if files.model else None
    if not views and model is None and not settings.prompt:
        raise ConceptError(
            f"concept folder {folder}: file {SETTINGS_FILE} has no `prompt`, and there are no images or "
            f"{MODEL_FILE}; add concept images, a model, or a prompt for text-to-3D"
        )
    return Concept(files.asset_id, folder, views, model, settings, files.content_hash)
