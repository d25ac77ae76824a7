"""Runware: Hyper3D Rodin Gen-2 (`hyper3d:rodin@gen-2`) as `3dInference` tasks.

Contract (Runware's "Generating 3D models from images and text",
runware.ai/docs/models/hyper3d-rodin-gen-2/guides/image-and-text-to-3d):
`POST https://api.runware.ai/v1` with a JSON array of tasks and `Authorization: Bearer`; `inputs.images`
takes URLs, base64 or data URIs (Kiln sends data URIs, so no hosting is needed), up to five views of one
object with the first seeding the materials; `settings.useOriginalAlpha` makes a cut-out's alpha the
silhouette and requires image input; `seed` is 0..65535; text-to-3D works from a prompt alone; the
result is `outputs.files[].url`, a GLB.

Filled in from other Runware documents:
- Async delivery: `"deliveryMethod": "async"` returns an acknowledgment with the task UUID; the
  `getResponse` task reports `processing`, `success` or `error` (runware.ai/docs/platform/task-polling;
  the Rodin Gen-2 model page lists deliveryMethod with default `async`).
- The prompt field is `positivePrompt` (Runware/sdk-python `runware/types.py`, `I3dInference`, added
  in SDK 0.4.43 per its CHANGELOG).
- Errors come as `{"errors": [{"code", "message", "taskUUID", ...}]}` with HTTP 400/401/402/403/429/5xx
  (runware.ai/docs/platform/errors).
- Settings rules: `polyCount` cannot be combined with `quality`; `meshMode: Raw` excludes `addons`;
  `useOriginalAlpha` needs `inputs.images` (runware.ai/docs/models/hyper3d-rodin-gen-1,
  "Compatibility & Validation"; Gen-2 uses the same settings, per the topology guide).

Never paying twice (runware.ai/docs/platform/task-polling and /task-details): the taskUUID is
Kiln's, fresh per submission ("must be unique per task") and written into the runner's intent before
the request leaves. An ambiguous submission is resolved by that id: `getResponse` answers for
*active* tasks only, so its "not found" alone proves nothing (a finished task is no longer active);
`getTaskDetails` answers for any previously executed task. Found by either: the job is resumed;
found by neither (after the runner's settle time): the task never arrived, and is sent again with a
new UUID. A poll that `getResponse` no longer knows is asked of `getTaskDetails` too, and reported
"missing" (never "failed") if neither knows it. 503 is documented as possibly upstream, so a
submission answered 503 is ambiguous here, not retried. `includeCost` makes Runware report what each
task cost in USD, which the spend ledger then records instead of the estimate.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import pricing
from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import RemoteProvider, check_bool, check_choice, check_int, check_str, data_uri, message_from_json

MODEL = "hyper3d:rodin@gen-2"

# Rodin Gen-2 settings as Runware documents them (runware.ai/docs/models/hyper3d-rodin-gen-2 and its
# "topology and polygon budget" guide); values are Hyper3D's own (hyper3d.ai API: quality, mesh_mode,
# material, quality_override 500..1,000,000 faces for Raw, 1,000..200,000 for Quad).
SETTINGS_CHOICES: dict[str, tuple[str, ...]] = {
    "quality": ("high", "medium", "low", "extra-low"),
    "meshMode": ("Quad", "Raw"),
    "material": ("PBR", "Shaded", "All"),
}
SETTINGS_BOOLS = ("useOriginalAlpha", "TAPose", "hdTexture")
ADDONS = ("HighPack",)
POLY_RANGE = {"Raw": (500, 1_000_000), "Quad": (1_000, 200_000)}
NOT_FOUND_CODES = ("taskNotFound", "notFound", "taskUUIDNotFound")


class RunwareProvider(RemoteProvider):
    name = "runware"
    model = MODEL
    default_base_url = "https://api.runware.ai/v1"
    key_vars = ("RUNWARE_API_KEY",)
    generation_options = frozenset({"model", "seed", "settings"})
    can_lookup = True
    lookup_window_s = 30 * 24 * 3600.0  # getTaskDetails answers for past tasks; no retention is documented
    submit_retry_statuses = frozenset({429})

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {creds['RUNWARE_API_KEY']}"}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=5, text_ok=True)
        model = check_str("model", self.name, opts.get("model", MODEL))
        settings = opts.get("settings") or {}
        if not isinstance(settings, dict):
            raise ProviderError(f"{self.name}: option settings={settings!r} must be a table of Rodin settings")
        settings = dict(settings)
        known = set(SETTINGS_CHOICES) | set(SETTINGS_BOOLS) | {"addons", "polyCount"}
        for key in settings:
            if key not in known:
                check_choice("settings key", self.name, key, sorted(known))
        for key, choices in SETTINGS_CHOICES.items():
            if key in settings:
                check_choice(f"settings.{key}", self.name, settings[key], choices)
        for key in SETTINGS_BOOLS:
            if key in settings:
                check_bool(f"settings.{key}", self.name, settings[key])
        if "addons" in settings:
            addons = settings["addons"] if isinstance(settings["addons"], list) else [settings["addons"]]
            for addon in addons:
                check_choice("settings.addons", self.name, addon, ADDONS)
            settings["addons"] = addons
        if "polyCount" in settings:
            lo, hi = POLY_RANGE[settings.get("meshMode", "Quad")]
            check_int("settings.polyCount", self.name, settings["polyCount"], lo, hi)
        if request.images and "useOriginalAlpha" not in settings and all(i.has_alpha for i in request.images):
            settings["useOriginalAlpha"] = True  # cut-out concept art: its alpha is the silhouette
        if settings.get("useOriginalAlpha") and not request.images:
            raise ProviderError(f"{self.name}: settings.useOriginalAlpha needs concept images (it has no effect "
                                "in text-to-3D)")
        if "polyCount" in settings and "quality" in settings:
            raise ProviderError(f"{self.name}: settings.polyCount cannot be combined with settings.quality; "
                                "choose a quality preset or a polygon count")
        if settings.get("meshMode") == "Raw" and settings.get("addons"):
            raise ProviderError(f"{self.name}: settings.addons cannot be used with settings.meshMode = 'Raw'")
        seed = request.seed if request.seed is not None else opts.get("seed")
        if seed is not None:
            seed = check_int("seed", self.name, seed, 0, 65535)
        return {"model": model, "mode": "image-to-3d" if request.images else "text-to-3d",
                "seed": seed, "settings": settings}

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        settings = params.get("settings", {})
        return {"tier": settings.get("quality") or settings.get("polyCount"), "seed": params.get("seed")}

    def cost_usd(self, params: dict[str, Any]) -> float:
        addons = params.get("settings", {}).get("addons") or []
        return pricing.price_usd(self.name, highpack="HighPack" in addons, options=self.options)

    # ------------------------------------------------------------------------------------------

    def new_client_id(self) -> str:
        return str(uuid.uuid4())

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        params = self.params(request)
        task_uuid = client_id or self.new_client_id()
        task: dict[str, Any] = {
            "taskType": "3dInference",
            "taskUUID": task_uuid,
            "model": params["model"],
            "deliveryMethod": "async",
            "outputType": "URL",
            "outputFormat": "GLB",
            "includeCost": True,
        }
        if request.images:
            task["inputs"] = {"images": [data_uri(img) for img in request.images]}  # first view first
        if request.prompt:
            task["positivePrompt"] = request.prompt
        if params["seed"] is not None:
            task["seed"] = params["seed"]
        if params["settings"]:
            task["settings"] = params["settings"]
        body = self._send([task], "submit the 3dInference task", idempotent=False)
        errors = [e for e in body.get("errors") or [] if e.get("taskUUID") in (None, task_uuid)]
        if errors:
            raise ProviderError(self.http.redact(f"{self.name}: the task was refused: {message_from_json(errors)}"),
                                accepted=False)
        if not any(item.get("taskUUID") == task_uuid for item in body.get("data") or []):
            raise ProviderError(f"{self.name}: the submit answer does not acknowledge task {task_uuid}")
        return self._handle(task_uuid, request_hash)

    def _handle(self, task_uuid: str, request_hash: str) -> JobHandle:
        return JobHandle(self.name, task_uuid, request_hash, time.time(), {"taskUUID": task_uuid})

    def _send(self, tasks: list[dict[str, Any]], what: str, idempotent: bool = True) -> dict[str, Any]:
        # A 400 carrying a task-scoped `errors` array is an answer about the task, not about the call.
        response = self.http.request("POST", self.base_url, json=tasks, what=what, idempotent=idempotent,
                                     ok=_is_task_error)
        body = self.http.json(response, what)
        if not isinstance(body, dict):
            raise ProviderError(f"{self.name}: {what}: unexpected answer shape")
        return body

    def _details(self, task_uuid: str) -> dict[str, Any] | None:
        """What `getTaskDetails` knows of a past task: its recorded response envelope, None if nothing."""
        body = self._send([{"taskType": "getTaskDetails", "taskUUID": task_uuid}], f"task details of {task_uuid}")
        for item in body.get("data") or []:
            if item.get("taskUUID") == task_uuid and isinstance(item.get("request"), list):
                response = item.get("response")
                return response if isinstance(response, dict) else {}
        if any(e.get("code") in NOT_FOUND_CODES for e in body.get("errors") or []):
            return None
        raise ProviderError(f"{self.name}: getTaskDetails gave no answer about task {task_uuid}")

    def lookup(self, client_id: str, request_hash: str) -> JobHandle | None:
        status = self._status(client_id, {})
        if status.state == "missing":
            return None
        return self._handle(client_id, request_hash)

    def poll(self, handle: JobHandle) -> JobStatus:
        return self._status(handle.job_id, handle.data)

    def _status(self, task_uuid: str, data: dict[str, Any]) -> JobStatus:
        body = self._send([{"taskType": "getResponse", "taskUUID": task_uuid}], f"poll task {task_uuid}")
        errors = [e for e in body.get("errors") or [] if e.get("taskUUID") in (None, task_uuid)]
        if errors and all(e.get("code") in NOT_FOUND_CODES for e in errors):
            # Not among the *active* tasks: finished and gone, or never arrived. Ask the task history.
            details = self._details(task_uuid)
            if details is None:
                return JobStatus("missing", message=f"task {task_uuid} is unknown to getResponse and getTaskDetails")
            body = details
            errors = [e for e in body.get("errors") or [] if e.get("taskUUID") in (None, task_uuid)]
            if not errors and not any(i.get("status") for i in body.get("data") or []):
                return JobStatus("queued")  # recorded (the acknowledgment) but no outcome yet
        if errors:
            return JobStatus("failed", message=self.http.redact(message_from_json(errors)))
        for item in body.get("data") or []:
            if item.get("taskUUID") != task_uuid:
                continue
            status = item.get("status")
            cost = item.get("cost")
            charged = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
            if status == "success":
                files = (item.get("outputs") or {}).get("files") or []
                urls = [f.get("url") for f in files if isinstance(f, dict) and f.get("url")]
                if not urls:
                    return JobStatus("failed", message="the task succeeded but returned no file URL",
                                     charged_usd=charged)
                data["url"] = urls[0]
                return JobStatus("succeeded", progress=1.0, charged_usd=charged)
            if status == "error":
                return JobStatus("failed", message=self.http.redact(message_from_json(item) or "status error"),
                                 charged_usd=charged)
            return JobStatus("running", progress=item.get("progress"))
        return JobStatus("queued")

    def fetch(self, handle: JobHandle) -> bytes:
        return self.download_result(handle, "url")


def _is_task_error(response) -> bool:
    if response.status_code != 400:
        return False
    try:
        errors = response.json().get("errors")
    except Exception:  # noqa: BLE001 - not JSON: let the normal error path explain it
        return False
    return bool(errors) and all(isinstance(e, dict) and (e.get("taskUUID") or e.get("code") in NOT_FOUND_CODES)
                                for e in errors)
