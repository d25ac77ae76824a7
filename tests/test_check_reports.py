"""What an artist reads on a failed check and on a materialization: the failure first, measured
against its limit, with the lever that fixes it; a thumbnail large enough to judge by."""

from __future__ import annotations

import base64
import io

from PIL import Image

from pipeline.assets.common import INLINE_MARKDOWN_LIMIT, thumbnail_markdown
from pipeline.checks import _result
from pipeline.geometry import validate
from pipeline.geometry.glb import write_glb
from pipeline.geometry.render import preview_png
from tests.test_export_profiles import sample_input


def test_a_failed_check_says_what_failed_measured_against_the_limit_then_the_fix():
    model = sample_input().levels[0].model  # a valid 1 m sphere: every file check passes
    findings = validate.validate_glb(write_glb(model), category="small_prop")
    findings.append(validate.check_lod_errors([0.001, 0.02], [0.002, 0.004], [1.0, 0.4]))
    findings.append(validate.check_budgets([100, 50], [80, 60], [0.002, 0.004], [1.0, 0.4]))
    result = _result(findings)
    assert not result.passed
    first = result.description.split(" | ")[0]
    assert first.startswith("lod_error_within_bound: LOD1 error 20 mm"), first
    assert "measured error_m [0.001, 0.02]" in first and "limit max_error_m [0.002, 0.004]" in first
    assert "Fix: lower that level's `[lod] screen_sizes` entry" in first
    assert "lod_budgets" in result.description.split(" | ")[1]  # the warning after the error

    table = result.metadata["findings"].value.splitlines()
    assert table[0] == "| result | check | measured | limit | detail |"
    rows = [r.split(" | ")[0].lstrip("| ") for r in table[2:]]
    assert rows[:2] == ["FAIL", "WARN"] and set(rows[2:]) == {"pass"}, rows  # failures first
    assert "{" not in result.metadata["findings"].value, "measurements are text, not dict reprs"


def test_bounds_failure_names_the_category_lever():
    model = sample_input().levels[0].model
    for prim in model.primitives:
        prim.positions = prim.positions * 10.0  # 10 m: a small prop modelled in decimetres
    bounds = validate.check_bounds(model, "small_prop")
    assert not bounds.passed
    description = _result([bounds]).description
    assert description.startswith("bounding_box_plausible: the model is 10 x 10 x 10 m"), description
    assert "limit category small_prop, min_m 0.02, max_m 1.5" in description
    assert description.endswith("Fix: set the right `category` (or `height_m`) in asset.toml, or fix the model's units")


def test_inline_thumbnail_is_128_px_and_fits_the_inline_markdown_limit():
    md = thumbnail_markdown(preview_png(sample_input().levels[0].model, 256), "crate")
    assert md.startswith("![crate](data:image/webp;base64,") and len(md) < INLINE_MARKDOWN_LIMIT
    image = Image.open(io.BytesIO(base64.b64decode(md.split(",", 1)[1].rstrip(")"))))
    assert image.size == (128, 128)


def test_demo_ends_with_where_to_look_next(tmp_path, monkeypatch):
    import io as _io

    from pipeline.cli import print_next_steps, reuse_text

    monkeypatch.setenv("PORT", "3001")
    out = _io.StringIO()
    print_next_steps(str(tmp_path / "exports"), out)
    text = out.getvalue()
    assert str(tmp_path / "exports" / "index.html") in text and "make gallery" in text
    assert "make dev" in text and "http://127.0.0.1:3001/asset-groups" in text
    assert reuse_text(["generation", "LODs"], True) == "generation, LODs"
    assert reuse_text([], True) == "nothing (all new)" and reuse_text([], False) == "-"


def test_every_asset_and_check_says_what_to_do_when_it_fails():
    from pipeline.checks import ALL_CHECKS
    from pipeline.definitions import defs

    for spec in defs.resolve_all_asset_specs():
        assert "fail" in (spec.description or ""), f"{spec.key.to_user_string()}: say what to change when it fails"
        assert "DESIGN.md" not in spec.description and "../shared" not in spec.description
    for check in ALL_CHECKS:
        for spec in check.check_specs:
            assert "fail" in spec.description, spec.name
            assert spec.blocking == (spec.name != "lod_budgets_met"), spec.name
