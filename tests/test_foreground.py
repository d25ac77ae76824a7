"""Foreground masks: alpha is trusted, plain backgrounds are separated, everything else is refused."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from pipeline.geometry.foreground import ReconstructionError, decode_image, fill_background, foreground


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def disc_image(size: int = 128, background=(255, 255, 255), mode: str = "RGB") -> tuple[bytes, np.ndarray]:
    image = Image.new(mode, (size, size), background if mode == "RGB" else (*background, 255))
    ImageDraw.Draw(image).ellipse((30, 20, 98, 108), fill=(200, 40, 30) if mode == "RGB" else (200, 40, 30, 255))
    truth = Image.new("L", (size, size), 0)
    ImageDraw.Draw(truth).ellipse((30, 20, 98, 108), fill=255)
    return png(image), np.asarray(truth) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_alpha_channel_is_the_mask():
    image = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((20, 10, 70, 60), fill=(10, 200, 10, 255))
    fg = foreground(png(image))
    assert fg.source == "alpha"
    assert fg.mask.sum() == 51 * 51
    assert fg.bbox == (10, 61, 20, 71)


def test_plain_background_is_separated_by_border_colour():
    for background in [(255, 255, 255), (127, 127, 127), (20, 30, 200)]:
        data, truth = disc_image(background=background)
        fg = foreground(data)
        assert fg.source == "border"
        assert fg.background == background
        assert iou(fg.mask, truth) > 0.98


def test_opaque_rgba_falls_back_to_the_border():
    data, truth = disc_image(mode="RGBA")
    fg = foreground(data)
    assert fg.source == "border"
    assert iou(fg.mask, truth) > 0.98


def test_pinholes_are_filled_but_real_openings_stay():
    image = Image.new("RGB", (200, 200), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 180, 180), fill=(90, 60, 30))
    draw.rectangle((100, 100, 101, 101), fill=(255, 255, 255))  # a 2x2 highlight: a pinhole
    draw.ellipse((40, 40, 90, 90), fill=(255, 255, 255))  # a big opening (a handle's hole)
    fg = foreground(png(image))
    assert fg.mask[100, 100] and fg.mask[101, 101]
    assert not fg.mask[65, 65]


def test_largest_object_kept_and_specks_dropped():
    image = Image.new("RGB", (200, 200), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 160, 160), fill=(0, 90, 200))
    draw.rectangle((5, 190, 7, 192), fill=(0, 0, 0))  # a speck of dust
    fg = foreground(png(image))
    assert not fg.mask[191, 6]
    assert fg.mask[100, 100]


def test_fill_background_pads_with_object_colours():
    rgb = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    rgb[mask] = (200, 100, 50)
    out = fill_background(rgb, mask)
    assert (out == (200, 100, 50)).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: png(Image.fromarray(np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8))),
         "no plain background"),
        (lambda: png(Image.new("RGBA", (64, 64), (255, 0, 0, 0))), "fully transparent"),
        (lambda: png(Image.new("RGBA", (1, 1), (255, 0, 0, 255))), "1x1"),
        (lambda: png(Image.new("RGB", (64, 64), (255, 255, 255))), "no object"),
        (lambda: b"this is not an image at all", "not a readable image"),
        (lambda: b"", "empty"),
        (lambda: png(Image.new("RGB", (64, 64), (9, 9, 9)))[:60], "corrupt or truncated|not a readable image"),
    ],
    ids=["busy-photo", "all-transparent", "1x1", "empty-plain", "garbage", "no-bytes", "truncated"],
)
def test_bad_images_are_refused_with_a_clear_reason(make, message):
    with pytest.raises(ReconstructionError, match=message):
        foreground(make(), "view.png")


def huge_png_header(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR declares width x height (a decompression bomb's header)."""
    data = png(Image.new("1", (16, 16), 0))
    ihdr = bytearray(data[8:33])  # length, b"IHDR", 13 bytes, crc
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF)
    return data[:8] + bytes(ihdr) + data[33:]


def test_huge_image_is_refused_before_decoding():
    with pytest.raises(ReconstructionError, match="too large|limit"):
        decode_image(huge_png_header(20000, 20000), "bomb.png")
    with pytest.raises(ReconstructionError, match="9000x100"):
        decode_image(huge_png_header(9000, 100), "wide.png")


def test_two_equal_objects_are_not_one_object():
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 20, 70, 80), fill=(200, 0, 0))
    draw.ellipse((120, 20, 180, 80), fill=(0, 0, 200))
    with pytest.raises(ReconstructionError, match="no single object"):
        foreground(png(image))


def test_errors_are_value_errors():
    assert issubclass(ReconstructionError, ValueError)


def test_large_images_are_worked_on_at_bounded_size():
    image = Image.new("RGBA", (3000, 1500), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((500, 200, 2500, 1300), fill=(0, 0, 0, 255))
    rgba = decode_image(png(image))
    assert rgba.shape == (512, 1024, 4)


def ornamented(background=None, specks: bool = True, gap: int = 30) -> bytes:
    """A tall blade with two detached ornaments `gap` px away, and (optionally) dust specks."""
    mode, fill = ("RGBA", (0, 0, 0, 0)) if background is None else ("RGB", background)
    image = Image.new(mode, (300, 300), fill)
    draw = ImageDraw.Draw(image)
    draw.rectangle((140, 20, 160, 280), fill=(120, 130, 150))  # 21 x 261 blade
    draw.ellipse((160 + gap, 60, 160 + gap + 16, 76), fill=(30, 160, 220))  # orb: ~0.008 of the box
    draw.polygon([(140 - gap, 150), (132 - gap, 170), (140 - gap, 190), (148 - gap, 170)], fill=(30, 200, 120))  # ~0.012
    if specks:
        for x, y in ((20, 20), (270, 250), (40, 200)):
            draw.rectangle((x, y, x + 2, y + 2), fill=(90, 90, 90))  # 9 px: ~0.0001 of the box
    return png(image)


@pytest.mark.parametrize("background", [None, (255, 255, 255)], ids=["alpha", "plain"])
def test_every_part_is_kept_and_specks_are_dropped(background):
    fg = foreground(ornamented(background))
    _, count = ndimage.label(fg.mask)
    assert count == 3, "blade and both ornaments"
    assert fg.mask[150, 150] and fg.mask[68, 198] and fg.mask[170, 110]
    assert not fg.mask[21, 21] and not fg.mask[251, 271]


def test_smallest_part_kept_is_configurable():
    # the ornaments are ~0.008 and ~0.012 of the object's bounding box (blade and ornaments)
    _, count = ndimage.label(foreground(ornamented(specks=False), min_part_area=0.01).mask)
    assert count == 2
    _, count = ndimage.label(foreground(ornamented(specks=False), min_part_area=0.02).mask)
    assert count == 1
    _, count = ndimage.label(foreground(ornamented(specks=False), min_part_area=0.001).mask)
    assert count == 3


def test_parts_far_apart_are_two_objects_on_one_sheet():
    # ornaments 30 px from a 261 px blade float around it; 90 px away (0.3 of the size) they do not
    assert foreground(ornamented(gap=60)).mask[68, 228]
    with pytest.raises(ReconstructionError, match=r"sheet\.png: no single object.*3 groups.*25%.*one object"):
        foreground(ornamented(gap=95), "sheet.png")
