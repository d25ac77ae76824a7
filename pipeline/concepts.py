"""Concept folders: `concepts/<asset_id>/` with 1-5 views, an optional `model.glb` and `asset.toml`.

Pure functions shared by the sensor (cheap scan, content fingerprint) and the `concept_art` asset
(full load with image validation). Every error names the folder and the file.
"""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    settings: dict[str, Any] = field(default_factory=dict)
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
    images = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                          and not p.name.startswith(".")))
    model = folder / MODEL_FILE
    settings = folder / SETTINGS_FILE
    has_model = model.is_file()
    has_settings = settings.is_file()
    if not images and not has_model and not has_settings:
        raise ConceptError(f"concept folder {folder}: empty (no images, no {MODEL_FILE}, no {SETTINGS_FILE})")
    h = hashlib.sha256()
    for p in (*images, *([model] if has_model else []), *([settings] if has_settings else [])):
        h.update(p.name.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return ConceptFiles(asset_id, folder, images, model if has_model else None,
                        settings if has_settings else None, h.hexdigest())


def scan(concepts_dir: Path) -> tuple[list[ConceptFiles], list[tuple[str, str]]]:
    """All usable concept folders, and (name, reason) for each one skipped."""
    found: list[ConceptFiles] = []
    skipped: list[tuple[str, str]] = []
    if not concepts_dir.is_dir():
        return found, [(str(concepts_dir), "concepts folder does not exist")]
    for entry in sorted(concepts_dir.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        try:
            found.append(list_files(entry))
        except ConceptError as exc:
            skipped.append((entry.name, str(exc)))
    return found, skipped


def read_settings(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConceptError(f"concept folder {path.parent}: file {path.name}: invalid TOML: {exc}") from None


def read_view(path: Path) -> View:
    """Read and verify one image; errors name the folder and file."""
    from PIL import Image, UnidentifiedImageError

    where = f"concept folder {path.parent}: file {path.name}"
    data = path.read_bytes()
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
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ConceptError):
            raise
        raise ConceptError(f"{where}: corrupt image ({exc})") from None
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
    settings = read_settings(files.settings) if files.settings else {}
    views = [read_view(p) for p in files.images]
    model = files.model.read_bytes() if files.model else None
    if not views and model is None and not settings.get("prompt"):
        raise ConceptError(
            f"concept folder {folder}: file {SETTINGS_FILE} has no `prompt`, and there are no images or "
            f"{MODEL_FILE}; add concept images, a model, or a prompt for text-to-3D"
        )
    return Concept(files.asset_id, folder, views, model, settings, files.content_hash)
