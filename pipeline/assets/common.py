"""What every Kiln asset shares: the partitions, and metadata a technical artist reads at a glance."""

from __future__ import annotations

import base64
import io
from typing import Any, Mapping

import dagster as dg

from ..storage import BlobStore

game_assets = dg.DynamicPartitionsDefinition(name="game_assets")

# Across runs, a downstream stage follows its upstream automatically, but only once the upstream's
# blocking checks passed.
FOLLOW_UPSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

# Backfills run each game asset's whole chain in a run of its own, Dagster's default for assets
# without a backfill policy. Batching several assets per run (BackfillPolicy.multi_run with N > 1)
# would lose what Dagster 1.13 records only for single-partition steps: per-asset check results and
# the content-hash data version; and a multi-partition step fails as a whole, so one bad folder
# would fail its batch-mates. Even an explicit multi_run(max_partitions_per_run=1) tags each run with
# a one-partition range, and check results are then stored without their partition (measured live:
# every backfilled export said "unchecked"). Measured per-asset overhead of a backfill run over a
# lone run: 0.1-0.6 s (tests/test_live_ui.py).

# Inline markdown in the Dagster UI renders only under 1,000 characters; a data-URI thumbnail must
# stay well below that, so it is tiny and palette-quantized. The full-size preview is linked beside it.
INLINE_MARKDOWN_LIMIT = 1000


def thumbnail_markdown(png: bytes, alt: str, max_chars: int = INLINE_MARKDOWN_LIMIT - 100) -> str:
    """The largest palette thumbnail (down from 48 px) whose markdown fits the inline limit."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGBA")
        for side, colors in ((48, 32), (40, 24), (32, 16), (24, 12), (16, 8)):
            thumb = img.copy()
            thumb.thumbnail((side, side))
            buf = io.BytesIO()
            thumb.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
            md = f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"
            if len(md) <= max_chars:
                return md
    return f"_{alt}: preview too detailed for an inline thumbnail_"


def preview_metadata(store: BlobStore, png: bytes, alt: str) -> dict[str, dg.MetadataValue]:
    """Inline thumbnail plus the full preview (stored as a blob) behind it."""
    sha = store.put(png, "image/png")
    big = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return {
        "preview": dg.MetadataValue.md(thumbnail_markdown(png, alt)),
        "preview_large": dg.MetadataValue.md(big),
        "preview_file": dg.MetadataValue.path(store.location(sha)),
    }


def bounds_metadata(lo, hi) -> dict[str, Any]:
    size = [round(float(h - l), 4) for l, h in zip(lo, hi)]
    return {
        "bounds_min_m": [round(float(v), 4) for v in lo],
        "bounds_max_m": [round(float(v), 4) for v in hi],
        "size_m": size,
    }


def md_table(headers: list[str], rows: list[list[Any]]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def lineage_metadata(lineage: Mapping[str, Any]) -> dict[str, dg.MetadataValue]:
    """The chain of hashes from this artifact back to the concept images, as metadata."""
    return {"lineage": dg.MetadataValue.json(dict(lineage))}
