"""Foreground masks for concept views: which pixels are the object.

An image with a real alpha channel is trusted (alpha >= 50 %). An opaque image must show one object
on a plain background: the background colour is estimated from the image border, pixels that differ
from it are foreground. Either way small enclosed pinholes are filled, and every separate region of
at least `min_part_area` of the object's bounding-box area is a part of the object (a sword's
floating ornaments, a ghost's drips); smaller regions are specks and dropped. Parts in groups further
apart than `MAX_PART_GAP` of the object's size are two objects on one sheet and refused: a concept
folder holds one object. Anything else (a busy photo, an empty or fully transparent image, a tiny,
huge or corrupt file) is refused with a `ReconstructionError` that says what to fix, instead of being
reconstructed into a blob.

Images are decoded once and shrunk to at most `WORK_SIDE` pixels: masks, distance fields and the
texture charts all work at that size, which bounds time and memory whatever the artist drew at.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

MIN_SIDE = 16  # below this there is no silhouette to speak of
MAX_SIDE = 8192  # same bound as the concept loader; checked from the header, before decoding
MAX_PIXELS = 64_000_000
WORK_SIDE = 1024  # masks and texture charts are computed at most this large
ALPHA_THRESHOLD = 128
MIN_OBJECT_FRACTION = 0.002  # of the image area: smaller is a speck, not an object
MIN_OBJECT_SIDE = 8  # pixels at working size
# A separate region is a part of the object when its area is at least this fraction of the object's
# bounding-box area, else a speck. Measured on the third-party concept images: the smallest real
# parts are a robot's antenna and a dragon's tail spike, each cut off by a one-pixel alpha gap
# (0.0011), and a ghost's drips (0.005-0.007); the largest stray alpha speck is 0.00004. (0.002,
# tried first, dropped the antenna and the spike.)
MIN_PART_AREA = 0.0005
# Parts whose groups are further apart than this fraction of the object's size (its bounding box's
# longer side) are separate objects (two props on one sheet); ornaments float closer than that.
MAX_PART_GAP = 0.25


class ReconstructionError(ValueError):
    """A view cannot be reconstructed; the message names the view and what to change."""


@dataclass
class Foreground:
    """One decoded view at working size and the pixels that are the object."""

    rgba: np.ndarray  # (h, w, 4) uint8, straight (not premultiplied) colour
    mask: np.ndarray  # (h, w) bool
    source: str  # "alpha" or "border" (background colour estimated from the image border)
    background: tuple[int, int, int] | None = None  # the estimated plain background colour

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of the mask, end-exclusive."""
        return mask_bbox(self.mask)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of a non-empty mask, end-exclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode PNG/JPEG/WebP bytes to RGBA uint8 at most WORK_SIDE pixels on the long side.

    The size is checked from the header before any pixel is decoded, so a decompression bomb
    (a tiny file declaring 20000x20000 pixels) costs nothing.
    """
    if not data:
        raise ReconstructionError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ReconstructionError(f"{name}: image is too large to decode safely ({exc})") from None
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ReconstructionError(f"{name}: not a readable image (PNG, JPEG or WebP expected): {exc}") from None
    except Image.DecompressionBombWarning as exc:
        raise ReconstructionError(f"{name}: image is too large to decode safely ({exc})") from None
    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ReconstructionError(
            f"{name}: image is {width}x{height} pixels; the limit is {MAX_SIDE} px per side "
            f"({MAX_PIXELS // 1_000_000} MP): downscale it (1024-2048 px is plenty for a concept view)"
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ReconstructionError(
            f"{name}: image is only {width}x{height} pixels; a concept view needs at least "
            f"{MIN_SIDE}x{MIN_SIDE} (512-2048 px recommended)"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            # 16-bit / float greyscale: scale to 8 bits rather than clipping
            arr = np.asarray(image, np.float64)
            peak = arr.max() if arr.size and arr.max() > 0 else 1.0
            image = Image.fromarray((arr / peak * 255).astype(np.uint8), "L")
        image = image.convert("RGBA" if has_alpha else "RGB").convert("RGBA")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ReconstructionError(f"{name}: the image data is corrupt or truncated: {exc}") from None
    if max(image.size) > WORK_SIDE:
        scale = WORK_SIDE / max(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image = _resize_rgba(image, size)
    return np.asarray(image, np.uint8).copy()


def _resize_rgba(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with premultiplied alpha, so transparent pixels' (arbitrary) colour does not bleed."""
    premultiplied = image.convert("RGBa").resize(size, Image.Resampling.LANCZOS)
    return premultiplied.convert("RGBA")


def foreground(data: bytes, name: str = "image", *, min_part_area: float = MIN_PART_AREA) -> Foreground:
    """Decode a concept view and separate the object (all its parts) from its background."""
    return foreground_from_rgba(decode_image(data, name), name, min_part_area=min_part_area)


def foreground_from_rgba(rgba: np.ndarray, name: str = "image", *, min_part_area: float = MIN_PART_AREA) -> Foreground:
    alpha = rgba[..., 3]
    if alpha.min() < 250:  # a real alpha channel: trust it
        mask = alpha >= ALPHA_THRESHOLD
        if not mask.any():
            raise ReconstructionError(
                f"{name}: the image is fully transparent (no pixel has alpha >= 50%); there is no object to reconstruct"
            )
        mask = _clean(mask, name, source="alpha", hole_fraction=0.001, min_part_area=min_part_area)
        return Foreground(rgba, mask, "alpha")
    background, mask = _separate_plain_background(rgba, name)
    mask = _clean(mask, name, source="border", hole_fraction=0.01, min_part_area=min_part_area)
    out = rgba.copy()
    out[..., 3] = np.where(mask, 255, 0).astype(np.uint8)
    return Foreground(out, mask, "border", background)


def _separate_plain_background(rgba: np.ndarray, name: str) -> tuple[tuple[int, int, int], np.ndarray]:
    rgb = rgba[..., :3].astype(np.int16)
    h, w = rgb.shape[:2]
    ring = max(2, min(h, w) // 100)
    border = np.concatenate(
        [rgb[:ring].reshape(-1, 3), rgb[-ring:].reshape(-1, 3), rgb[:, :ring].reshape(-1, 3), rgb[:, -ring:].reshape(-1, 3)]
    )
    background = np.median(border, axis=0)
    border_diff = np.abs(border - background).max(axis=1)
    plain_share = float((border_diff <= 24).mean())
    if plain_share < 0.75:
        raise ReconstructionError(
            f"{name}: no plain background to separate the object from (only {plain_share:.0%} of the "
            "border is one colour); use a PNG with a transparent background, or one object on a "
            "plain backdrop"
        )
    # Threshold above the border's own noise (JPEG ringing, gradients), never below 24/255.
    tolerance = max(24.0, float(np.percentile(border_diff, 95)) * 1.5 + 8)
    diff = np.abs(rgb - background).max(axis=2)
    mask = diff > tolerance
    mask = ndimage.binary_opening(mask, iterations=1)  # drop single-pixel noise
    return tuple(int(c) for c in background), mask


def _clean(mask: np.ndarray, name: str, *, source: str, hole_fraction: float, min_part_area: float) -> np.ndarray:
    """Keep the object (every part of it, specks dropped), fill pinholes, refuse non-objects."""
    labels, count = ndimage.label(mask)
    if count == 0:
        raise ReconstructionError(f"{name}: no object found in the image (it is all background)")
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = ndimage.find_objects(labels)
    # The object's bounding box decides what a speck is; it is first the largest region's, then that
    # of the regions that pass (a second pass, so a sword's ornaments count against the whole sword).
    keep = sizes == sizes.max()
    for _ in range(2):
        keep = sizes >= min_part_area * _box_area([b for b, k in zip(boxes, keep) if k])
        keep |= sizes == sizes.max()
    mask = keep[np.maximum(labels - 1, 0)] & (labels > 0)
    if mask.sum() < MIN_OBJECT_FRACTION * mask.size:
        raise ReconstructionError(
            f"{name}: the object covers only {mask.sum() / mask.size:.2%} of the image; crop the view so "
            "the object fills most of it"
        )
    if keep.sum() > 1:
        _refuse_separate_objects(mask, name)
    if source == "border" and mask.mean() > 0.95:
        raise ReconstructionError(
            f"{name}: the object fills {mask.mean():.0%} of the image; leave a plain margin around it"
        )
    # Fill enclosed holes smaller than a fraction of the object (alpha pinholes, highlights that
    # matched the backdrop); bigger ones are real openings such as a handle or a loop.
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if holes.any():
        hole_labels, hole_count = ndimage.label(holes)
        hole_sizes = np.bincount(hole_labels.ravel(), minlength=hole_count + 1)
        small = hole_sizes < hole_fraction * mask.sum()
        small[0] = False
        mask = mask | small[hole_labels]
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows[-1] - rows[0] + 1 < MIN_OBJECT_SIDE or cols[-1] - cols[0] + 1 < MIN_OBJECT_SIDE:
        raise ReconstructionError(f"{name}: the object is too small ({cols[-1] - cols[0] + 1}x{rows[-1] - rows[0] + 1} px)")
    return mask


def _box_area(boxes: list[tuple[slice, slice]]) -> int:
    r0, r1 = min(b[0].start for b in boxes), max(b[0].stop for b in boxes)
    c0, c1 = min(b[1].start for b in boxes), max(b[1].stop for b in boxes)
    return (r1 - r0) * (c1 - c0)


def _refuse_separate_objects(mask: np.ndarray, name: str) -> None:
    """Two or more groups of parts further apart than MAX_PART_GAP of the object's size: two objects."""
    r0, r1, c0, c1 = mask_bbox(mask)
    gap = MAX_PART_GAP * max(r1 - r0, c1 - c0)
    # Parts closer than `gap` touch once each is grown by half of it: one distance transform.
    grown = ndimage.distance_transform_edt(~mask[r0:r1, c0:c1]) <= gap / 2
    _, groups = ndimage.label(grown)
    if groups > 1:
        raise ReconstructionError(
            f"{name}: no single object: the art shows {groups} groups of parts more than "
            f"{MAX_PART_GAP:.0%} of the object's size apart, which reads as {groups} objects on one sheet; "
            "a concept folder holds one object: put each object in its own folder (parts of one object "
            "float closer together)"
        )


def fill_background(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Colour every pixel outside `mask` with the nearest object pixel (texture padding).

    The edge pixels of a cut-out are often a dark or light fringe (matting), so colours are taken
    from one pixel inside the edge when the object is thick enough for that.
    """
    inner = ndimage.binary_erosion(mask, iterations=1)
    source = inner if inner.sum() >= 0.5 * mask.sum() else mask
    if source.all():
        return rgb.copy()
    _, (rows, cols) = ndimage.distance_transform_edt(~source, return_indices=True)
    return rgb[rows, cols]
