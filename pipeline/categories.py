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
    thickness: float  # single-view reconstruction depth as a fraction of height


CATEGORIES: dict[str, Category] = {
    "hero": Category(height_m=1.8, thickness=0.35),  # characters, vehicles: seen up close
    "prop": Category(height_m=1.0, thickness=0.5),  # crates, barrels, furniture
    "small_prop": Category(height_m=0.3, thickness=0.6),  # bottles, tools, pickups
    "environment": Category(height_m=4.0, thickness=0.5),  # rocks, trees, building pieces
}


def category(name: str | None) -> Category:
    name = name or DEFAULT_CATEGORY
    if name not in CATEGORIES:
        raise ValueError(f"unknown category {name!r}; choose one of: {', '.join(CATEGORIES)}")
    return CATEGORIES[name]
