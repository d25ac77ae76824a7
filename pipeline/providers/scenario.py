"""Scenario: Hyper3D Rodin Gen-2.5 (`model_rodin-hyper3d-v2-5`).

Contract (Scenario's "Rodin Gen-2.5 — API Reference", docs.scenario.com): Basic auth with
`SCENARIO_SDK_API_KEY:SCENARIO_SDK_API_SECRET`; `POST /v1/generate/custom/model_rodin-hyper3d-v2-5`
with `images` = 1 to 5 Scenario asset ids and the documented options (tier, addons,
qualityMeshOption, material, geometryInstructMode, textureMode, isSymmetric, hdTexture,
textureDelight, isMicro, useOriginalAlpha, previewRender, TAPose, seed); the answer holds a job;
poll `GET /v1/jobs/{jobId}` until `status` is `success`; the results are `job.metadata.assetIds`;
asset URLs are temporary, so download at once.

Filled in from other Scenario documents:
- Upload: `POST /v1/assets` with `{"image": <base64>, "name": <file name>}` for images under 6 MB,
  answering with the asset and its id (docs.scenario.com/get-started/content/uploading-assets).
- Asset id -> URL: `GET /v1/assets/{assetId}` answers `{"asset": {"id", "url", ...}}`
  (help.scenario.com, "How to retrieve the asset URL").
- Terminal job statuses are `success`, `failure` and `canceled`; `progress` is 0..1
  (docs.scenario.com/sdk-helpers/jobs).
Where the failure reason lives on a failed job is not documented; Kiln reads `job.error`, then
`job.metadata.error`.

Enumerated options: seed 001 names them without listing their values; the values are Hyper3D's
own for Rodin Gen-2.5 (developer.hyper3d.ai/api-specification/rodin-gen2.5: five tiers,
`textureMode`, `isSymmetric`, `material`), and `qualityMeshOption` is "<count> Quad|Triangle" like
the documented default "500K Triangle". `isMicro` "only effective with Extreme High tier" (seed 001)
is refused elsewhere rather than silently ignored. Cost: the generate answer's `creativeUnitsCost`
is recorded; with the account's `usd_per_credit` set it replaces the estimate in the spend ledger.
The job id is Scenario's, and its API has no look-up by a client-chosen id, so an unanswered
submission is left to the artist (see the runner).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from . import pricing
from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import (
    ProviderHttpError,
    RemoteProvider,
    check_bool,
    check_choice,
    check_int,
    check_str,
    data_uri,
    message_from_json,
)

MODEL_ID = "model_rodin-hyper3d-v2-5"
MAX_UPLOAD_BYTES = 6 * 1024 * 1024  # /v1/assets takes images under 6 MB (larger ones need /v1/uploads)

# The documented options and their documented defaults (Scenario's API reference); Kiln sends them all explicitly so
# the request fingerprint and the metadata say exactly what was asked for.
DEFAULTS: dict[str, Any] = {
    "tier": "Gen-2.5-Medium",
    "addons": "",
    "qualityMeshOption": "500K Triangle",
    "material": "All",
    "geometryInstructMode": "faithful",
    "textureMode": "",
    "isSymmetric": "unknown",
    "hdTexture": False,
    "textureDelight": False,
    "isMicro": False,
    "useOriginalAlpha": False,
    "previewRender": False,
    "TAPose": False,
}
BOOL_OPTIONS = ("hdTexture", "textureDelight", "isMicro", "useOriginalAlpha", "previewRender", "TAPose")
CHOICES: dict[str, tuple[str, ...]] = {
    "tier": ("Gen-2.5-Extreme-Low", "Gen-2.5-Low", "Gen-2.5-Medium", "Gen-2.5-High", "Gen-2.5-Extreme-High"),
    "addons": ("", "HighPack"),
    "material": ("PBR", "Shaded", "All", "Hybrid", "None"),
    "geometryInstructMode": ("faithful", "creative"),
    "textureMode": ("", "legacy", "extreme-low", "low", "medium", "high", "extreme-high"),
    "isSymmetric": ("unknown", "symmetric", "balanced", "asymmetric"),
}
MESH_PRESETS = ("4K Quad", "8K Quad", "18K Quad", "50K Quad", "2K Triangle", "20K Triangle", "150K Triangle",
                "500K Triangle")
MESH_OPTION = re.compile(r"^[1-9][0-9]*[KM] (Quad|Triangle)$")


class ScenarioProvider(RemoteProvider):
    name = "scenario"
    model = MODEL_ID
    default_base_url = "https://api.cloud.scenario.com"
    key_vars = ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET")
    generation_options = frozenset(DEFAULTS) | {"seed"}
    CLIENT_OPTIONS = RemoteProvider.CLIENT_OPTIONS | {"projectId"}  # scopes uploads and jobs to a project

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"Basic {self._token(creds)}"}

    def secrets(self, creds: dict[str, str]) -> list[str]:
        return [*creds.values(), self._token(creds)]

    @staticmethod
    def _token(creds: dict[str, str]) -> str:
        pair = f"{creds['SCENARIO_SDK_API_KEY']}:{creds['SCENARIO_SDK_API_SECRET']}"
        return base64.b64encode(pair.encode()).decode()

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=5)
        params = dict(DEFAULTS)
        if request.images and all(i.has_alpha for i in request.images):
            params["useOriginalAlpha"] = True  # cut-out concept art: keep its transparency
        params.update({k: v for k, v in opts.items() if k in DEFAULTS})
        for key, choices in CHOICES.items():
            check_choice(key, self.name, params[key], choices)
        mesh = check_str("qualityMeshOption", self.name, params["qualityMeshOption"])
        if not MESH_OPTION.match(mesh):
            check_choice("qualityMeshOption", self.name, mesh, MESH_PRESETS)  # names the nearest preset
        for key in BOOL_OPTIONS:
            check_bool(key, self.name, params[key])
        if params["isMicro"] and params["tier"] != "Gen-2.5-Extreme-High":
            raise ProviderError(f"{self.name}: isMicro=true only works with tier 'Gen-2.5-Extreme-High' "
                                f"(tier is {params['tier']!r})")
        seed = request.seed if request.seed is not None else opts.get("seed")
        if seed is not None:
            params["seed"] = check_int("seed", self.name, seed, 0)
        for img in request.images:
            if len(img.data) >= MAX_UPLOAD_BYTES:
                raise ProviderError(f"{self.name}: view {img.name} of asset {request.asset_id!r} is "
                                    f"{len(img.data)} bytes; Scenario's asset upload takes images under 6 MB")
        return params

    def cost_usd(self, params: dict[str, Any]) -> float:
        return pricing.price_usd(self.name, tier=params.get("tier"), highpack=params.get("addons") == "HighPack",
                                 options=self.options)

    def _query(self) -> dict[str, str]:
        project = self.options.get("projectId")
        return {"projectId": str(project)} if project else {}

    # ------------------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        params = self.params(request)
        asset_ids = [self._upload(img.name, data_uri(img)) for img in request.images]  # first view first
        body: dict[str, Any] = {"images": asset_ids, "prompt": request.prompt or "", **params}
        response = self.http.request("POST", f"/v1/generate/custom/{MODEL_ID}", json=body, params=self._query(),
                                     what="submit the Rodin Gen-2.5 generation", idempotent=False)
        answer = self.http.json(response, "submit") or {}
        job = answer.get("job") or {}
        job_id = job.get("jobId")
        if not job_id:
            raise ProviderError(f"{self.name}: the generate answer has no job id")
        data: dict[str, Any] = {"inputAssetIds": asset_ids}
        credits = answer.get("creativeUnitsCost")
        if isinstance(credits, (int, float)):
            data["credits"] = credits
            charged = self.credits_usd(credits)
            if charged is not None:
                data["charged_usd"] = charged
        return JobHandle(self.name, job_id, request_hash, time.time(), data)

    def _upload(self, name: str, image: str) -> str:
        response = self.http.request("POST", "/v1/assets", json={"image": image, "name": name},
                                     params=self._query(), what=f"upload view {name}")
        asset = (self.http.json(response, "upload") or {}).get("asset") or {}
        if not asset.get("id"):
            raise ProviderError(f"{self.name}: the upload of view {name} returned no asset id")
        return asset["id"]

    def _job(self, job_id: str) -> dict[str, Any]:
        response = self.http.request("GET", f"/v1/jobs/{job_id}", params=self._query(), what=f"poll job {job_id}")
        return (self.http.json(response, f"poll job {job_id}") or {}).get("job") or {}

    def poll(self, handle: JobHandle) -> JobStatus:
        try:
            job = self._job(handle.job_id)
        except ProviderHttpError as exc:
            if exc.status == 404:
                return JobStatus("missing", message=str(exc))
            raise
        status = job.get("status")
        progress = job.get("progress")
        progress = float(progress) if isinstance(progress, (int, float)) else None
        if status == "success":
            handle.data["assetIds"] = list((job.get("metadata") or {}).get("assetIds") or [])
            return JobStatus("succeeded", progress=1.0)
        if status in ("failure", "canceled"):
            reason = job.get("error") or (job.get("metadata") or {}).get("error") or f"job {status}"
            return JobStatus("failed", message=self.http.redact(
                reason if isinstance(reason, str) else message_from_json(reason)))
        return JobStatus("queued" if status in (None, "queued") else "running", progress=progress)

    def _asset(self, asset_id: str) -> dict[str, Any]:
        response = self.http.request("GET", f"/v1/assets/{asset_id}", params=self._query(),
                                     what=f"resolve asset {asset_id}")
        return (self.http.json(response, "resolve asset") or {}).get("asset") or {}

    def fetch(self, handle: JobHandle) -> bytes:
        asset_ids = handle.data.get("assetIds")
        if not asset_ids:
            job = self._job(handle.job_id)
            asset_ids = list((job.get("metadata") or {}).get("assetIds") or [])
        if not asset_ids:
            raise ProviderError(f"{self.name}: job {handle.job_id} finished without result assets")
        assets = [self._asset(a) for a in asset_ids]
        model = next((a for a in assets if _is_glb(a)), assets[0] if len(assets) == 1 else None)
        if model is None or not model.get("url"):
            raise ProviderError(f"{self.name}: job {handle.job_id} returned no GLB among assets {asset_ids}")
        what = f"download asset {model.get('id')} of job {handle.job_id}"
        try:
            return self.download_glb(model["url"], what)
        except ProviderHttpError as exc:
            if exc.status not in (401, 403, 404, 410):
                raise
            # The temporary URL expired between resolving and downloading: resolve it again, once.
            fresh = self._asset(model["id"])
            return self.download_glb(fresh.get("url", ""), what + " (fresh URL)")


def _is_glb(asset: dict[str, Any]) -> bool:
    mime = str(asset.get("mimeType") or asset.get("contentType") or "")
    url = str(asset.get("url") or "").split("?", 1)[0].lower()
    return "gltf" in mime or url.endswith(".glb")
