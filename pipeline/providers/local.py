"""`local`: Kiln's own offline reconstruction from the concept views (no network, no cost).

One view is given depth from its silhouette, part by part (asset.toml `[reconstruct]` chooses flat
or round parts and the smallest part kept); a turnaround set is carved into a textured visual hull
(`pipeline.geometry.reconstruct`). The params carry `generator_version`, so a generator that makes
different models from the same inputs never reuses the previous version's cached generations. The work happens inside `submit`, so the runner stores and
reuses the result exactly as it does for a paid vendor job.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..categories import category
from ..geometry.glb import write_glb
from ..settings import KILN_VERSION
from .base import GenerationRequest, JobHandle, JobStatus, OfflineProviderBase, ProviderError


class LocalProvider(OfflineProviderBase):
    name = "local"
    model = "kiln-reconstruct"
    # asset.toml [options] / run config the offline generator understands (ReconstructionConfig's knobs)
    OPTIONS = ("thickness", "roughness", "depth_profile", "resolution", "texture_size", "hull_roundness",
               "simplify_voxels")

    def __init__(self, *, base_url: str | None = None, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        from ..geometry.reconstruct import GENERATOR_VERSION

        if not request.images:
            raise ProviderError(
                f"asset {request.asset_id}: the local provider needs at least one concept image "
                "(text-to-3D needs a remote provider such as runware)"
            )
        cat = category(request.category)
        opts = {**self.options, **request.options}
        unknown = sorted(set(opts) - set(self.OPTIONS))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], self.OPTIONS, n=1)
            raise ProviderError(f"local: unknown option {unknown[0]!r}"
                                + (f"; did you mean {close[0]!r}?" if close else "")
                                + f" (allowed: {', '.join(self.OPTIONS)})")
        try:
            params: dict[str, Any] = {
                "height_m": float(request.height_m or cat.height_m),
                "thickness": _number("thickness", opts.get("thickness", cat.thickness)),
                "roughness": _number("roughness", opts.get("roughness", 0.8)),
                "depth_profile": str(opts.get("depth_profile", cat.depth_profile)),
                "kiln_version": KILN_VERSION,
                "generator_version": GENERATOR_VERSION,
            }
            # asset.toml [reconstruct], already checked by its schema; absent keys keep the generator's defaults
            for key in ("depth", "min_part_area"):
                if request.reconstruct.get(key) is not None:
                    params[key] = request.reconstruct[key]
            for key in ("resolution", "texture_size"):
                if opts.get(key) is not None:
                    params[key] = _number(key, opts[key], integer=True)
            for key in ("hull_roundness", "simplify_voxels"):
                if opts.get(key) is not None:
                    params[key] = _number(key, opts[key])
            self._config(params)  # ranges, checked now rather than when the reconstruction starts
        except ValueError as exc:
            raise ProviderError(f"local: {exc}") from None
        return params

    def reconstruction_config(self, request: GenerationRequest):
        """The `ReconstructionConfig` this request runs with (for benchmarks and notebooks)."""
        return self._config(self.params(request))

    @staticmethod
    def _config(params: dict[str, Any]):
        from ..geometry.reconstruct import ReconstructionConfig

        return ReconstructionConfig(**{k: v for k, v in params.items() if k not in ("kiln_version", "generator_version")})

    def cost_usd(self, params: dict[str, Any]) -> float:
        return 0.0

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        from ..geometry.reconstruct import reconstruct

        params = self.params(request)
        config = self._config(params)
        started = time.time()
        try:
            model = reconstruct([(v.name, v.data) for v in request.images], config,
                                angles=list(request.view_angles) or None)
        except ValueError as exc:
            # bad art (two objects on one sheet, no object at all): nothing ran that a retry could
            # change, so it fails at once
            raise ProviderError(str(exc), accepted=False) from None
        model.name = request.asset_id
        glb = write_glb(model)
        return JobHandle(self.name, f"local-{request_hash[:12]}", request_hash, started, result_glb=glb)

    def poll(self, handle: JobHandle) -> JobStatus:
        return JobStatus("succeeded", 1.0)

    def fetch(self, handle: JobHandle) -> bytes:
        raise ProviderError("local generations finish inside submit; there is nothing to fetch")


def _number(name: str, value: Any, integer: bool = False) -> float | int:
    what = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be {what}")
    if integer and int(value) != value:
        raise ValueError(f"{name}={value!r} must be {what}")
    return int(value) if integer else float(value)
