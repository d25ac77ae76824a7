"""goneural.ai emulator: `POST /v1/tasks/image-to-3d` (multipart) and `GET /v1/tasks/{id}`.

Follows seeds/004 (Bearer auth; an uploaded `image` or an `asset_id`, not both; `version`
premium-v1, `seed`, `faceLimit`, `pbr`; the task object with `output.glb`) and goneural's
developer docs (`GET /v1/tasks/:id`; statuses queued, in_progress, succeeded, failed).
"""

from __future__ import annotations

import uuid
from typing import Any

from .server import Emulator, Reply, Request, is_image, json_reply


class GoNeuralEmulator(Emulator):
    name = "goneural"
    steps = ("queued", "in_progress")

    def __init__(self, *, api_key: str, **kwargs: Any):
        super().__init__(api_key=api_key, **kwargs)

    def routes(self):
        return [("POST", r"/v1/tasks/image-to-3d", "submit", self._submit),
                ("GET", r"/v1/tasks/(?P<task_id>[^/]+)", "poll", self._task)]

    def authorized(self, req: Request) -> bool:
        auth = req.headers.get("Authorization", "")
        self.last_credential = auth.removeprefix("Bearer ")
        return auth == f"Bearer {self.credentials['api_key']}"

    def unauthorized(self, req: Request) -> Reply:
        return json_reply({"message": f"Unauthenticated (token {self.last_credential})"}, 401)

    def balance_body(self) -> Any:
        return {"message": "Not enough credits"}

    def _submit(self, req: Request) -> Reply:
        if not req.headers.get("Content-Type", "").startswith("multipart/form-data"):
            return json_reply({"message": "image must be uploaded as multipart/form-data"}, 422)
        fields, files = req.form()
        has_image, has_asset = "image" in files, bool(fields.get("asset_id"))
        if has_image == has_asset:
            return json_reply({"message": "Either image or asset_id is required, but not both"}, 422)
        if has_image and not is_image(files["image"][1]):
            return json_reply({"message": "image is not a PNG, JPEG or WebP file"}, 422)
        if fields.get("version", "premium-v1") != "premium-v1":
            return json_reply({"message": "The currently allowed version is premium-v1"}, 422)
        if "faceLimit" in fields and not fields["faceLimit"].isdigit():
            return json_reply({"message": "faceLimit must be an integer"}, 422)
        if fields.get("pbr", "true") not in ("true", "false", "1", "0"):
            return json_reply({"message": "pbr must be a boolean"}, 422)
        job = self.new_job(str(uuid.uuid4()), body={"fields": fields, "files": {k: (v[0], len(v[1]), v[2])
                                                                               for k, v in files.items()}})
        return json_reply(self._task_object(job, "queued"), 201)

    def _task_object(self, job, status: str) -> dict[str, Any]:
        seed = (job.body or {}).get("fields", {}).get("seed")
        return {"id": job.id, "status": status, "type": "premium-image-to-3d", "seed": int(seed or 0),
                "input": {}, "output": {}, "creditUsed": 20, "refunded": False, "userId": 7,
                "finishedAt": None, "createdAt": "2026-03-31T10:00:00Z", "asset": None, "assetId": None, "meta": {}}

    def _task(self, req: Request, task_id: str) -> Reply:
        job = self.known(task_id)
        if job is None:
            return json_reply({"message": "Task not found"}, 404)
        state = self.advance(job)
        if state == "done":
            task = self._task_object(job, "succeeded")
            task.update(output={"glb": self.file_url()}, finishedAt="2026-03-31T10:02:00Z")
        elif state == "failed":
            task = self._task_object(job, "failed")
            task.update(refunded=True, meta={"error": job.fail_message})
        else:
            task = self._task_object(job, state)
        return json_reply(task)
