"""The Dagster assets, one module per stage."""

import warnings

import dagster as dg

# Kiln pins the dagster family (pyproject.toml), so the beta/preview APIs it relies on (partitioned
# asset checks, backfill policies, data versions on outputs) are fixed for this version; their
# warnings would only bury the demo's and the UI's own output.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message="Found asset job named", category=UserWarning)
