"""Every shared concept image and turnaround, reconstructed offline and normalized as the pipeline
does, gets a LOD chain that passes: switch sizes fall, each level within its own switch size's
bound, Khronos-valid files. The TRELLIS turnarounds and the sample lantern (issue 15's repro) run
in `make test`; the full sweep is `make test-lod-sweep` (marker `sweep`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipeline.categories import CATEGORIES
from pipeline.geometry.glb import read_glb, write_glb
from pipeline.geometry.lod import LodBudget, build_lod_chain
from pipeline.geometry.normalize import normalize
from pipeline.geometry.reconstruct import ReconstructionConfig, reconstruct
from tests.test_lod import assert_khronos_valid, check_chain

ROOT = Path(__file__).resolve().parents[1]
FAST = ReconstructionConfig(resolution=80, texture_size=256)
TURNAROUNDS = "images/multiview/microsoft__TRELLIS/assets/example_multi_image"


def normalized(views, category: str, config: ReconstructionConfig = FAST, angles=None):
    """What the offline provider and generated_model make of the views."""
    row = CATEGORIES[category]
    config = ReconstructionConfig(**{**config.__dict__, "height_m": row.height_m, "thickness": row.thickness,
                                     "depth_profile": row.depth_profile})
    model, _ = normalize(read_glb(write_glb(reconstruct(views, config, angles=angles))), target_height_m=row.height_m)
    return model


def chain_of(views, category: str, config: ReconstructionConfig = FAST, angles=None):
    model = normalized(views, category, config, angles)
    budget = CATEGORIES[category].lod
    return model, build_lod_chain(model, budget, samples=10_000), budget


def validate_all(tmp_path: Path, chains: dict) -> None:
    for name, (model, chain, budget) in chains.items():
        check_chain(name, model, chain, budget)
    assert_khronos_valid(tmp_path, {name: chain for name, (_, chain, _) in chains.items()})


def test_trellis_turnarounds_get_valid_chains(testdata, tmp_path):
    folder = testdata / TURNAROUNDS
    chains = {}
    for name, category in (("mushroom", "small_prop"), ("orangeguy", "hero")):
        views = [(p.name, p.read_bytes()) for p in sorted(folder.glob(f"{name}_*.png"))]
        chains[name] = chain_of(views, category, angles=["front", "left", "back"])
        assert len(chains[name][1]) >= 2, chains[name][1].notes
    validate_all(tmp_path, chains)


def test_the_lantern_no_longer_fails_and_its_error_falls_with_triangles(tmp_path):
    # issue 15: `lod0_triangles = 8000` failed at LOD1 with 13.2 mm whatever the ratios
    folder = ROOT / "data/concepts/lantern"
    settings = tomllib.loads((folder / "asset.toml").read_text())
    views = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.png"))]
    prop = CATEGORIES["prop"].lod
    # the offline provider's default resolution, unsimplified: the reconstruction as issue 15 found
    # it, needle included (its default surface is now simplified within 0.05 voxel, ~10x fewer triangles)
    model = normalized(views, "prop", ReconstructionConfig(simplify_voxels=0.0), angles=settings["views"])
    chains = {}
    for ratios in ((0.5, 0.25, 0.1), (0.75, 0.4, 0.15)):
        budget = LodBudget(8000, ratios=ratios, screen_sizes=prop.screen_sizes)
        chains[f"lantern_{ratios[0]}"] = (model, build_lod_chain(model, budget, samples=10_000), budget)
    validate_all(tmp_path, chains)
    for _, chain, _ in chains.values():
        # Far levels weigh normals less (lod.NORMAL_WEIGHT_FULL_FROM), so LOD2 gets cheaper (4,773
        # triangles, was 6,791); below it a thin part collapses (33 mm at 4,296), so LOD3 is not made
        # and `chain_notes` says so (`validate_all`). The old LOD3 had 6,111: the shorter chain
        # costs less at every distance.
        assert len(chain) >= 3, chain.notes
        assert chain[1].error_m < 0.0132  # the needle (under a pixel wide) no longer decides LOD1
        assert chain[-1].triangles < 6111, [lod.triangles for lod in chain]


@pytest.mark.sweep
def test_every_shared_concept_image_gets_a_valid_chain(testdata, tmp_path):
    chains = {}
    for path in sorted((testdata / "images" / "single").rglob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            chains[path.stem] = chain_of([(path.name, path.read_bytes())], "prop")
    for folder in sorted((ROOT / "data/concepts").iterdir()):
        settings = tomllib.loads((folder / "asset.toml").read_text()) if (folder / "asset.toml").exists() else {}
        views = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".webp")]
        if views:
            chains[folder.name] = chain_of(views, settings.get("category", "prop"), angles=settings.get("views"))
    assert len(chains) >= 14
    validate_all(tmp_path, chains)


@pytest.mark.sweep
def test_every_shared_input_looks_right_at_its_switch_sizes(testdata):
    """Issue 15's rendered check over all shared content (real GLBs, single images, turnarounds) and
    the samples in data/concepts:
    every level, rendered beside the source at its switch size, stays within a pixel of the
    source's outline (mean), and a level ships a baked normal map only where it shades closer."""
    from pipeline.geometry.glb import GlbError
    from pipeline.geometry.lod_look import bake_and_judge

    inputs = {}
    for path in sorted((testdata / "glb" / "textured").rglob("*.glb")) + sorted((testdata / "highpoly").rglob("*.glb")):
        try:
            model = read_glb(path.read_bytes())
        except GlbError:  # skinned / animated: refused by the reader on purpose
            continue
        inputs[str(path.relative_to(testdata))] = (model, build_lod_chain(model, CATEGORIES["prop"].lod, samples=10_000))
    for path in sorted((testdata / "images" / "single").rglob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            model, chain, _ = chain_of([(path.name, path.read_bytes())], "prop")
            inputs[str(path.relative_to(testdata))] = (model, chain)
    folder = testdata / TURNAROUNDS
    for name, category in (("mushroom", "small_prop"), ("orangeguy", "hero")):
        views = [(p.name, p.read_bytes()) for p in sorted(folder.glob(f"{name}_*.png"))]
        model, chain, _ = chain_of(views, category, angles=["front", "left", "back"])
        inputs[name] = (model, chain)
    for folder in sorted((ROOT / "data/concepts").iterdir()):
        settings = tomllib.loads((folder / "asset.toml").read_text()) if (folder / "asset.toml").exists() else {}
        views = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".webp")]
        if views:
            model, chain, _ = chain_of(views, settings.get("category", "prop"), angles=settings.get("views"))
            inputs[folder.name] = (model, chain)
    assert len(inputs) >= 25, sorted(inputs)
    problems, baked, levels, worst = [], 0, 0, 0.0
    for name, (model, chain) in inputs.items():
        bake_and_judge(model, chain, normal_map_px=256)
        for lod in chain:
            look = lod.look
            levels, worst = levels + 1, max(worst, look.shipped.silhouette_px)
            if look.shipped.silhouette_px >= 1.0:
                problems.append(f"{name} LOD{lod.level}: outline {look.shipped.silhouette_px:.2f} px at {lod.screen_size}")
            if look.bake_used:
                baked += 1
                if not look.baked.shading < look.plain.shading:
                    problems.append(f"{name} LOD{lod.level}: ships a bake that shades {look.plain.shading:.2f} -> "
                                    f"{look.baked.shading:.2f}")
    print(f"{len(inputs)} inputs, {levels} levels: worst mean outline {worst:.3f} px, {baked} ship a baked map")
    assert not problems, problems
    assert baked >= 10, f"only {baked} levels ship a baked map"
