"""What every Kiln asset shares: the partitions, and metadata a technical artist reads at a glance."""

from __future__ import annotations

import base64
import io
import traceback
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

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


# ----------------------------------------------------------------------------------------------
# Failures, classified once
#
# Bad data (art, asset.toml, models, run config) fails at once: retrying cannot fix it, and the
# artist should read why within seconds, not after the retry policy's back-off. Only faults of the
# machinery (the network, a disk, S3) are transient and may be retried. Whatever the cause, the
# artist reads one line that names the asset; the stack trace stays in the step log.

def bad_data(asset_id: str, message: str) -> dg.Failure:
    """A failure no retry can fix; `message` names the file and field and says what is accepted."""
    return dg.Failure(description=one_line(f"asset {asset_id}: {message}"), allow_retries=False)


def one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _transient_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError]  # ConnectionError, TimeoutError, disk faults
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        types += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    return tuple(types)


@contextmanager
def classified_failures(context: dg.AssetExecutionContext, stage: str) -> Iterator[None]:
    """Turn any exception of a stage into one Dagster Failure line, retryable only if transient."""
    from ..asset_settings import SettingsError
    from ..concepts import ConceptError
    from ..geometry.glb import GlbError
    from ..geometry.normalize import NormalizeError
    from ..providers import ProviderError

    asset_id = context.partition_key if context.has_partition_key else ""
    head = f"asset {asset_id}: {stage}" if asset_id else stage
    try:
        yield
    except (dg.Failure, dg.RetryRequested):  # already classified
        raise
    except ProviderError as exc:
        raise dg.Failure(description=one_line(f"{head}: {_without_asset(exc, asset_id)}"),
                         allow_retries=exc.retryable) from None
    except (ConceptError, SettingsError, GlbError, NormalizeError, ValueError) as exc:
        raise dg.Failure(description=one_line(f"{head}: {_without_asset(exc, asset_id)}"), allow_retries=False) from None
    except _transient_types() as exc:
        context.log.error(traceback.format_exc())
        raise dg.Failure(
            description=one_line(f"{head}: {type(exc).__name__}: {_without_asset(exc, asset_id)} "
                                 "(a fault of the network or storage, not of the asset; run it again)"),
            allow_retries=True) from exc
    except Exception as exc:
        context.log.error(traceback.format_exc())
        raise dg.Failure(
            description=f"{head}: internal error ({type(exc).__name__}); not retried, the stack trace is in the "
            "step log; please report it",
            allow_retries=False) from exc


def _without_asset(exc: BaseException, asset_id: str) -> str:
    """The error's own text, without a repeated `asset <id>: ` prefix."""
    text = str(exc) or type(exc).__name__
    return text.removeprefix(f"asset {asset_id}: ").removeprefix(f"asset {asset_id!r}: ")
