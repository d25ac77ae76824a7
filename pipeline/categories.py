"""Asset categories: the one place that says what a hero, a prop or a small prop is.

A category sets the defaults an artist would otherwise have to type: the real-world height of the
object, the single-view thickness (depth as a fraction of height) and the LOD chain (switch screen
sizes and triangle ceilings). Plausible sizes still live beside the checks
(`pipeline.geometry.validate`), keyed by these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .geometry.lod import LodBudget

DEFAULT_CATEGORY = "prop"


@dataclass(frozen=True)
class Category:
    height_m: float  # default real-world height when asset.toml gives none
    thickness: float  # single-view reconstruction: depth cap as a fraction of height
    depth_profile: str = "lathe"  # single-view depth: "lathe" (as deep as wide: props) or "inflate" (rounded: characters)
    lod: LodBudget = field(default_factory=lambda: LodBudget(lod0_triangles=20_000))


# LOD chains per category. Ceilings: LOD0 triangles (current-generation PC/console figures, the
# range studios quote for each role), then fractions of it. Switch screen sizes (Kiln's convention,
# `pipeline.geometry.lod.SCREEN_HEIGHT_PX`: the model's largest side as a fraction of the screen
# height): LOD0 up to full screen, then each level at the size where its error may be one pixel.
# Environment pieces fall faster: they are mostly seen from afar.
_HERO_LOD = LodBudget(lod0_triangles=100_000, ratios=(0.5, 0.25, 0.1), screen_sizes=(1.0, 0.5, 0.25, 0.1))
_PROP_LOD = LodBudget(lod0_triangles=20_000, ratios=(0.5, 0.25, 0.1), screen_sizes=(1.0, 0.4, 0.2, 0.08))
_SMALL_PROP_LOD = LodBudget(lod0_triangles=5_000, ratios=(0.5, 0.25, 0.1), screen_sizes=(1.0, 0.3, 0.12, 0.05))
_ENVIRONMENT_LOD = LodBudget(lod0_triangles=50_000, ratios=(0.4, 0.15, 0.05), screen_sizes=(1.0, 0.4, 0.15, 0.05))


CATEGORIES: dict[str, Category] = {
    # characters, vehicles: seen up close
    "hero": Category(height_m=1.8, thickness=0.35, depth_profile="inflate", lod=_HERO_LOD),
    # crates, barrels, furniture: as deep as wide, many on screen at once
    "prop": Category(height_m=1.0, thickness=1.0, lod=_PROP_LOD),
    # bottles, tools, pickups: small on screen, the far levels can be very coarse
    "small_prop": Category(height_m=0.3, thickness=1.0, lod=_SMALL_PROP_LOD),
    # rocks, trees, building pieces: large, but mostly at a distance
    "environment": Category(height_m=4.0, thickness=0.8, lod=_ENVIRONMENT_LOD),
}


def category(name: str | None) -> Category:
    name = name or DEFAULT_CATEGORY
    if name not in CATEGORIES:
        raise ValueError(f"unknown category {name!r}; choose one of: {', '.join(CATEGORIES)}")
    return CATEGORIES[name]
