"""Runware emulator: `POST /v1` task arrays, `3dInference` (Rodin Gen-2) and `getResponse` polling.

Follows seeds/000 and runware.ai/docs/platform/{task-polling,errors}: Bearer auth; an async
`3dInference` is acknowledged with its taskUUID; `getResponse` answers `processing` then `success`
with `outputs.files[].url`, or an `errors` entry for a failed task; a taskUUID is unique per task.
`getResponse` answers for active tasks only (a restart, `forget()`, loses them for a few polls);
`getTaskDetails` answers with the recorded request and response of any task ever received
(runware.ai/docs/platform/task-details). `includeCost` adds the task's `cost` in USD.
Rodin settings are checked against the documented values (quality, meshMode, material, addons,
polyCount ranges, polyCount excludes quality).
"""

from __future__ import annotations

import re
from typing import Any

from .server import Emulator, Reply, Request, json_reply

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MODEL = "hyper3d:rodin@gen-2"
COST_USD = 0.45  # what the emulated account is charged per task (differs from Kiln's estimate on purpose)
SETTINGS = {"quality": ("high", "medium", "low", "extra-low"), "meshMode": ("Quad", "Raw"),
            "material": ("PBR", "Shaded", "All")}


class RunwareEmulator(Emulator):
    name = "runware"
    steps = ("processing", "processing")

    def __init__(self, *, api_key: str, **kwargs: Any):
        super().__init__(api_key=api_key, **kwargs)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self):
        return [("POST", r"/v1", self._route_name, self._tasks)]

    @staticmethod
    def _route_name(req: Request) -> str:
        try:
            tasks = req.json()
        except ValueError:
            return "submit"
        polls = all(t.get("taskType") in ("getResponse", "getTaskDetails") for t in tasks if isinstance(t, dict))
        return "poll" if polls else "submit"

    def authorized(self, req: Request) -> bool:
        auth = req.headers.get("Authorization", "")
        self.last_credential = auth.removeprefix("Bearer ")
        return auth == f"Bearer {self.credentials['api_key']}"

    def unauthorized(self, req: Request) -> Reply:
        message = f"Invalid API key {self.last_credential}. Get one at https://my.runware.ai/signup"
        return json_reply({"errors": [{"code": "invalidApiKey", "taskType": "authentication", "message": message}]},
                          401)

    def rate_limit_body(self) -> Any:
        return {"errors": [{"code": "rateLimitExceeded", "message": "Too many requests"}]}

    def balance_body(self) -> Any:
        return {"errors": [{"code": "insufficientCredits",
                            "message": "Insufficient credits, please add your credit card and top-up your balance"}]}

    def _tasks(self, req: Request) -> Reply:
        tasks = req.json()
        if not isinstance(tasks, list):
            error = {"code": "invalidRequest", "message": "the body must be an array of tasks"}
            return json_reply({"errors": [error]}, 400)
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for task in tasks:
            kind = task.get("taskType")
            if kind == "3dInference":
                problem = self._validate(task)
                if problem:
                    errors.append({"code": "invalidParameter", "message": problem, "taskUUID": task.get("taskUUID"),
                                   "taskType": kind})
                    continue
                self.new_job(task["taskUUID"], body=task)
                data.append({"taskType": kind, "taskUUID": task["taskUUID"]})
            elif kind == "getTaskDetails":
                item, error = self._details(task.get("taskUUID", ""))
                if item:
                    data.append(item)
                if error:
                    errors.append(error)
            elif kind == "getResponse":
                item, error = self._response(task.get("taskUUID", ""))
                if item:
                    data.append(item)
                if error:
                    errors.append(error)
            else:
                errors.append({"code": "invalidTaskType", "message": f"unknown taskType {kind!r}"})
        body: dict[str, Any] = {"data": data}
        if errors:
            body["errors"] = errors
        return json_reply(body, 400 if errors and not data else 200)

    def _validate(self, task: dict[str, Any]) -> str | None:
        if not UUID_RE.match(str(task.get("taskUUID", ""))):
            return "taskUUID must be a UUID v4"
        if task["taskUUID"] in self.jobs:
            return "taskUUID must be unique per task"
        if task.get("model") != MODEL:
            return f"unknown model {task.get('model')!r}"
        images = (task.get("inputs") or {}).get("images") or []
        if len(images) > 5:
            return "inputs.images takes at most 5 images"
        for image in images:
            if not (str(image).startswith(("data:image/", "http://", "https://")) or UUID_RE.match(str(image))):
                return "inputs.images must be URLs, base64, data URIs or UUIDs"
        if not images and not task.get("positivePrompt"):
            return "either inputs.images or positivePrompt is required"
        settings = task.get("settings") or {}
        if settings.get("useOriginalAlpha") and not images:
            return "When settings.useOriginalAlpha is provided, inputs.images is required"
        for key, allowed in SETTINGS.items():
            if key in settings and settings[key] not in allowed:
                return f"settings.{key} must be one of {', '.join(allowed)}"
        if any(a != "HighPack" for a in settings.get("addons") or []):
            return "settings.addons may only contain HighPack"
        if "polyCount" in settings and "quality" in settings:
            return "settings.polyCount cannot be combined with settings.quality"
        seed = task.get("seed")
        if seed is not None and not (isinstance(seed, int) and 0 <= seed <= 65535):
            return "seed must be an integer between 0 and 65535"
        return None

    def _response(self, task_uuid: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        job = self.known(task_uuid)
        if job is None:
            return None, {"code": "taskNotFound", "message": f"no active task {task_uuid}", "taskUUID": task_uuid}
        state = self.advance(job)
        base = {"taskType": "3dInference", "taskUUID": task_uuid}
        if state == "done":
            return self._success(job), None
        if state == "failed":
            return None, {"code": "inferenceFailed", "message": job.fail_message, "taskUUID": task_uuid,
                          "taskType": "3dInference"}
        return {**base, "status": "processing"}, None

    def _success(self, job) -> dict[str, Any]:
        item = {"taskType": "3dInference", "taskUUID": job.id, "status": "success",
                "outputs": {"files": [{"uuid": job.id, "url": self.file_url()}]}}
        if (job.body or {}).get("includeCost"):
            item["cost"] = COST_USD
        return item

    def _details(self, task_uuid: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        job = self.jobs.get(task_uuid)  # the task history survives restarts
        if job is None:
            return None, {"code": "taskNotFound", "message": f"no task {task_uuid}", "taskUUID": task_uuid}
        if self.finished(job) and not job.fail_message:
            response: dict[str, Any] = {"data": [self._success(job)]}
        elif self.finished(job):
            response = {"errors": [{"code": "inferenceFailed", "message": job.fail_message, "taskUUID": task_uuid}]}
        else:
            response = {"data": [{"taskType": "3dInference", "taskUUID": task_uuid}]}
        return {"taskType": "getTaskDetails", "taskUUID": task_uuid, "request": [job.body],
                "response": response}, None
