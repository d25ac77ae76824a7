"""Asset categories: the one place that says what a hero, a prop or a small prop is.

A category sets the defaults an artist would otherwise have to type: the real-world height of the
object and the single-view thickness (depth as a fraction of height). LOD budgets per category live
beside the LOD code (`pipeline.geometry.lod.CATEGORY_BUDGETS`) and plausible sizes beside the checks
(`pipeline.geometry.validate`), each keyed by these names.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CATEGORY = "prop"


@dataclass(frozen=True)
class Category:
    height_m: float  # default real-world height when asset.toml gives none
    thickness: float  # single-view reconstruction: depth cap as a fraction of height
    depth_profile: str = "lathe"  # single-view depth: "lathe" (as deep as wide: props) or "inflate" (rounded: characters)


CATEGORIES: dict[str, Category] = {
    "hero": Category(height_m=1.8, thickness=0.35, depth_profile="inflate"),  # characters, vehicles: seen up close
    "prop": Category(height_m=1.0, thickness=1.0),  # crates, barrels, furniture: as deep as wide
    "small_prop": Category(height_m=0.3, thickness=1.0),  # bottles, tools, pickups
    "environment": Category(height_m=4.0, thickness=0.8),  # rocks, trees, building pieces
}


def category(name: str | None) -> Category:
    name = name or DEFAULT_CATEGORY
    if name not in CATEGORIES:
        raise ValueError(f"unknown category {name!r}; choose one of: {', '.join(CATEGORIES)}")
    return CATEGORIES[name]
