"""What one generation costs, per provider and tier, and where each figure comes from.

Only Pixazo publishes a plain per-generation price in the documents Kiln was built from
(Pixazo's Hyper3D Rodin v1 page: "Per Generation | $0.4"). The other vendors bill in credits or
per-account plans, so their figures here are estimates that exist to make `max_spend_usd` budgets
meaningful; set the real number for your account with the provider option `price_usd` (run config
or `asset.toml`) or the environment variable `KILN_PRICE_<PROVIDER>_USD`, which win over this table.
Documented *ratios* are applied on top of the base price:
- Scenario Rodin Gen-2.5: "Extreme High bills at double the base rate" (Scenario's Rodin Gen-2.5 API reference, `tier`).
- Rodin HighPack add-on: Hyper3D's own API prices a generation at 0.5 credit and HighPack at an
  additional 1 credit (developer.hyper3d.ai/api-specification/rodin-generation), i.e. +2x base.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .base import ProviderError


@dataclass(frozen=True)
class Price:
    usd: float
    documented: bool
    source: str


PRICES: dict[str, Price] = {
    "pixazo": Price(0.40, True, "Pixazo Hyper3D Rodin v1 API pricing: $0.4 per generation"),
    "runware": Price(0.40, False, "estimate: Rodin Gen-2 on Runware bills per task; set price_usd for your account"),
    "scenario": Price(0.50, False, "estimate for Gen-2.5-Medium; Scenario bills in compute units"),
    "modelslab": Price(0.05, False, "estimate: ModelsLab bills image_to_3d per call or by plan"),
    "goneural": Price(0.50, False, "estimate: goneural.ai bills premium-v1 tasks in credits (task.creditUsed)"),
    "hunyuan3d": Price(0.0, True, "self-hosted Hunyuan3D-2 api_server: no per-call fee (your GPU time)"),
    "local": Price(0.0, True, "offline reconstruction"),
    "import": Price(0.0, True, "the concept folder's own model.glb"),
}

# Tier multipliers on the base price; only documented ratios live here.
TIER_MULTIPLIERS: dict[str, dict[str, float]] = {
    "scenario": {"Gen-2.5-Extreme-High": 2.0},
}
HIGHPACK_EXTRA = 2.0  # HighPack adds 2x the base price (Hyper3D: 0.5 credit base, +1 credit HighPack)


def _override(provider: str, options: dict[str, Any] | None) -> float | None:
    raw = (options or {}).get("price_usd")
    where = "provider option price_usd"
    if raw is None:
        raw = os.environ.get(f"KILN_PRICE_{provider.upper()}_USD")
        where = f"KILN_PRICE_{provider.upper()}_USD"
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ProviderError(f"{where}={raw!r} is not a number of US dollars") from None
    if value < 0:
        raise ProviderError(f"{where}={raw!r} is negative")
    return value


def price_usd(provider: str, *, tier: str | None = None, highpack: bool = False,
              options: dict[str, Any] | None = None) -> float:
    """The price of one generation in USD (an override, else the table with documented ratios)."""
    override = _override(provider, options)
    if override is not None:
        return override
    base = PRICES.get(provider)
    if base is None:
        raise ProviderError(f"no price known for provider {provider!r}; set the provider option price_usd")
    usd = base.usd * TIER_MULTIPLIERS.get(provider, {}).get(tier or "", 1.0)
    if highpack:
        usd += base.usd * HIGHPACK_EXTRA
    return round(usd, 4)


def price_source(provider: str) -> str:
    price = PRICES.get(provider)
    return price.source if price else "unknown"
