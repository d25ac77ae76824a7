"""Image-to-3D providers by name: `local` (default, offline), `import`, and the vendors.

The README lists them with their keys; docs/architecture.md (*Providers*) shows how they plug in.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .base import GenerationRequest, ImageInput, JobHandle, JobStatus, Provider, ProviderError

DEFAULT_PROVIDER = "local"

# name -> "module:Class"; modules are imported on demand so the offline path needs no HTTP stack.
PROVIDERS: dict[str, str] = {
    "local": "pipeline.providers.local:LocalProvider",
    "import": "pipeline.providers.importer:ImportProvider",
    "runware": "pipeline.providers.runware:RunwareProvider",
    "scenario": "pipeline.providers.scenario:ScenarioProvider",
    "modelslab": "pipeline.providers.modelslab:ModelsLabProvider",
    "pixazo": "pipeline.providers.pixazo:PixazoProvider",
    "goneural": "pipeline.providers.goneural:GoNeuralProvider",
    "hunyuan3d": "pipeline.providers.hunyuan3d:Hunyuan3DProvider",
}

REMOTE_PROVIDERS = ("runware", "scenario", "modelslab", "pixazo", "goneural", "hunyuan3d")

# One Dagster pool per provider caps how many of its jobs run at once across all runs (the vendors
# rate-limit per account; a self-hosted Hunyuan3D-2 server runs one generation per GPU). The pool
# name is `kiln/<provider>`; the limits below are the suggested defaults (set them with
# `dagster instance concurrency set kiln/<provider> <limit>`).
POOL_LIMITS: dict[str, int] = {
    "local": 2,  # CPU-bound offline reconstruction: one per core on the 2-core CI box
    "import": 8,
    "runware": 4,
    "scenario": 2,
    "modelslab": 2,
    "pixazo": 2,
    "goneural": 2,
    "hunyuan3d": 1,
}


def pool_for(name: str) -> str:
    """The Dagster pool that serializes calls to one provider."""
    return f"kiln/{name}"


def base_url_for(name: str, configured: str | None = None) -> str | None:
    """Run config wins, then KILN_<PROVIDER>_BASE_URL, then the provider's own default (None)."""
    return configured or os.environ.get(f"KILN_{name.upper()}_BASE_URL") or None


# Names that used to exist: a clear pointer instead of "unknown provider".
RENAMED: dict[str, str] = {
    "neural4d": "goneural",  # seed 004 documents goneural.ai's API, not DreamTech's Neural4D
}


def make_provider(name: str, *, base_url: str | None = None, options: dict[str, Any] | None = None) -> Provider:
    """The provider `name`, configured; raises ProviderError (never retryable) for a bad name or option.

    Construction and `params(request)` are pure and cheap (no network, no key needed), so callers
    may use them to validate an asset's options long before anything is uploaded or paid for.
    """
    if name in RENAMED:
        new = RENAMED[name]
        raise ProviderError(
            f"provider {name!r} was renamed {new!r} (the API Kiln calls is goneural.ai's): set "
            f"provider = \"{new}\" in asset.toml or the run config, the key as {new.upper()}_API_KEY and the "
            f"base URL override as KILN_{new.upper()}_BASE_URL", accepted=False)
    if name not in PROVIDERS:
        raise ProviderError(f"unknown provider {name!r}; choose one of: {', '.join(sorted(PROVIDERS))}")
    module_name, _, class_name = PROVIDERS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(base_url=base_url_for(name, base_url), options=dict(options or {}))


__all__ = [
    "DEFAULT_PROVIDER", "POOL_LIMITS", "PROVIDERS", "REMOTE_PROVIDERS", "RENAMED", "GenerationRequest", "ImageInput",
    "JobHandle", "JobStatus",
    "Provider", "ProviderError", "base_url_for", "make_provider", "pool_for",
]
