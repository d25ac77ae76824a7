"""asset.toml's schema: what it accepts and refuses, its one-line messages, and the docs made from it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from pipeline.asset_settings import AssetSettings, SettingsError, describe, markdown_table, parse_settings
from pipeline.assets.export import ExportConfig
from pipeline.assets.generation import GenerateConfig
from pipeline.assets.lods import LodConfig, resolve_budget
from pipeline.categories import CATEGORIES
from pipeline.providers import GenerationRequest, ImageInput, ProviderError, make_provider

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_a_full_file_round_trip():
    empty = parse_settings({})
    assert empty.category == "prop" and empty.height_m is None and empty.lod.ratios is None
    assert empty.reconstruct.depth == "auto" and empty.reconstruct.min_part_area == 0.0005
    assert empty.import_.skinned == "bind_pose" and empty.to_json() == {}
    raw = tomllib.loads(
        'prompt = "crate"\nprovider = "local"\ncategory = "hero"\nheight_m = 2\nseed = 65535\n'
        'views = ["front", 90]\nprofiles = ["web", "godot"]\n'
        '[lod]\nlod0_triangles = 5000\nratios = [0.5, 0.2]\nscreen_sizes = [1.0, 0.3, 0.1]\n'
        '[reconstruct]\ndepth = "round"\nmin_part_area = 0.5\n[import]\nskinned = "refuse"\n'
        '[options]\nresolution = 96\n')
    s = parse_settings(raw, image_count=2)
    assert s.height_m == 2.0 and isinstance(s.height_m, float) and s.seed == 65535
    assert s.lod.ratios == (0.5, 0.2) and s.lod.screen_sizes == (1.0, 0.3, 0.1)
    assert s.import_.skinned == "refuse" and s.options == {"resolution": 96}
    assert AssetSettings.from_json(s.to_json()) == s
    with pytest.raises(Exception):
        s.seed = 3  # frozen: stages read it, nobody edits it


@pytest.mark.parametrize("raw, expected", [
    ({"height_m": -1}, ["field height_m", "0.1-5"]),
    ({"height_m": 0}, ["field height_m", "0.1-5"]),
    ({"height_m": "tall"}, ["field height_m = 'tall'", "must be a number"]),
    ({"height_m": float("nan")}, ["field height_m", "finite"]),
    ({"height_m": float("inf")}, ["field height_m", "finite"]),
    ({"height_m": True}, ["field height_m", "must be a number"]),
    ({"category": "hero", "height_m": 25}, ["a hero is 0.3-20 m tall"]),
    ({"seed": -5}, ["field seed", "at least 0"]),
    ({"seed": 70000}, ["field seed", "at most 65535"]),
    ({"seed": "7"}, ["field seed", "whole number"]),
    ({"hieght_m": 1}, ["unknown key `hieght_m`; did you mean `height_m`?"]),
    ({"zzz": 1}, ["unknown key `zzz`; valid keys: prompt, provider"]),
    ({"lod": {"ratio": [0.5]}}, ["unknown key `[lod] ratio`; did you mean `ratios`?"]),
    ({"lod": {"lod0_triangles": 0}}, ["[lod] lod0_triangles", "at least 12"]),
    ({"lod": {"ratios": [0.5, 0.5]}}, ["[lod] ratios", "fall strictly"]),
    ({"lod": {"ratios": [0.5, 0]}}, ["[lod] ratios", "(0, 1)"]),
    ({"lod": {"screen_sizes": [1.5]}}, ["[lod] screen_sizes", "(0, 1]"]),
    ({"reconstruct": {"depth": "deep"}}, ["[reconstruct] depth", '"round"']),
    ({"reconstruct": {"min_part_area": 0}}, ["[reconstruct] min_part_area", "above 0"]),
    ({"import": {"skinned": "yes"}}, ["[import] skinned", "bind_pose"]),
    ({"profiles": ["web", "unreel"]}, ["profiles[1] = 'unreel'", "unreal"]),
    ({"views": ["front", "sideways"]}, ["field views", "sideways"]),
    ({"views": ["front", "nan"]}, ["field views", "'nan'"]),
    ({"provider": "runwear"}, ["field provider", "runware"]),
    ({"options": []}, ["field options", "table"]),
])
def test_bad_values_get_one_line_naming_the_field_and_what_fits(raw, expected):
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_several_problems_are_reported_together():
    with pytest.raises(SettingsError) as info:
        parse_settings({"seed": -1, "height_m": "x", "lod": {"ratios": [2.0]}, "colour": "red"})
    assert set(info.value.fields) == {"seed", "height_m", "[lod] ratios", "colour"}


def test_views_must_match_the_images():
    assert parse_settings({"views": ["front", "back"]}, image_count=2).views == ("front", "back")
    with pytest.raises(SettingsError, match="2 angles for 3 images"):
        parse_settings({"views": ["front", "back"]}, image_count=3)


def test_readme_table_and_example_come_from_the_schema():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- asset.toml keys: begin[^\n]*-->\n(.*?)\n<!-- asset.toml keys: end -->", readme, re.S)
    assert table, "README lost its generated asset.toml table"
    assert table.group(1).strip() == markdown_table().strip(), \
        "README's asset.toml table is out of date: paste pipeline.asset_settings.markdown_table() between the markers"
    for key in ("`seed`", "`[lod] screen_sizes`", "`[reconstruct] min_part_area`", "`[import] skinned`"):
        assert key in table.group(1)
    # the README's example asset.toml is itself valid
    example = re.search(r"```toml\n(.*?)```", readme, re.S).group(1)
    parse_settings(tomllib.loads("\n".join(line[2:] for line in example.splitlines())), image_count=3)


def test_launchpad_descriptions_and_ranges_come_from_the_schema():
    fields = GenerateConfig.model_fields
    assert describe(None, "seed") in fields["seed"].description
    assert describe(None, "provider") in fields["provider"].description
    assert LodConfig.model_fields["ratios"].description == describe("lod", "ratios")
    assert LodConfig.model_fields["lod0_triangles"].description == describe("lod", "lod0_triangles")
    assert ExportConfig.model_fields["profiles"].description.startswith("Export profiles, any of web, unity")


def test_run_config_budget_is_checked_like_the_file():
    base = CATEGORIES["prop"].lod
    toml_lod = parse_settings({"lod": {"lod0_triangles": 5000}}).lod
    assert resolve_budget("prop", toml_lod, LodConfig(ratios=[0.5, 0.2])).ratios == (0.5, 0.2)
    assert resolve_budget("prop", toml_lod, LodConfig()).lod0_triangles == 5000
    assert resolve_budget("prop", parse_settings({}).lod, LodConfig()) == base
    with pytest.raises(SettingsError, match=r"run config of lod_chain: field ratios: ratios must fall"):
        resolve_budget("prop", toml_lod, LodConfig(ratios=[0.5, 0.9]))


def _request(options: dict) -> GenerationRequest:
    image = ImageInput("front.png", b"png", "0" * 64, "image/png", True)
    return parse_settings({"options": options}).generation_request("crate", (image,), None)


def test_local_provider_refuses_bad_options_before_any_work():
    local = make_provider("local")
    assert local.params(_request({"resolution": 96}))["resolution"] == 96
    for options, expected in [({"resolutoin": 96}, "did you mean 'resolution'"),
                              ({"resolution": "high"}, "whole number"),
                              ({"resolution": 5000}, "16-1024"),
                              ({"texture_size": 300}, "power of two"),
                              ({"thickness": float("nan")}, "must be a number"),
                              ({"depth_profile": "cube"}, "depth_profile")]:
        with pytest.raises(ProviderError, match=re.escape(expected)):
            local.params(_request(options))


def test_reconstruct_section_reaches_the_local_generator_and_its_generation_key():
    from pipeline.geometry.foreground import MIN_PART_AREA
    from pipeline.geometry.reconstruct import GENERATOR_VERSION

    image = ImageInput("front.png", b"png", "0" * 64, "image/png", True)
    local = make_provider("local")

    def request(section: dict) -> GenerationRequest:
        return parse_settings({"reconstruct": section}).generation_request("shield", (image,), None)

    flat = local.params(request({"depth": "flat", "min_part_area": 0.01}))
    assert flat["depth"] == "flat" and flat["min_part_area"] == 0.01
    assert flat["generator_version"] == GENERATOR_VERSION
    config = local.reconstruction_config(request({"depth": "flat", "min_part_area": 0.01}))
    assert config.depth == "flat" and config.min_part_area == 0.01
    defaults = local.params(request({}))
    assert defaults["depth"] == "auto" and defaults["min_part_area"] == MIN_PART_AREA
    # a different shape choice, or another generator version, is another generation (no cache reuse)
    assert request({"depth": "flat"}).fingerprint("local", flat) != request({}).fingerprint("local", defaults)
    older = {**defaults, "generator_version": GENERATOR_VERSION - 1}
    assert request({}).fingerprint("local", older) != request({}).fingerprint("local", defaults)
    with pytest.raises(SettingsError, match=r"\[reconstruct\] depth"):
        parse_settings({"reconstruct": {"depth": "thin"}})
    with pytest.raises(SettingsError, match=r"\[reconstruct\] min_part_area"):
        parse_settings({"reconstruct": {"min_part_area": 0}})
