"""HTTP plumbing shared by the remote providers: polite retries, secret redaction, checked downloads.

- One httpx client per provider instance. API calls never follow redirects, so a vendor key sent in
  a custom header (Pixazo's `Ocp-Apim-Subscription-Key`) cannot ride a redirect to another host;
  result downloads use a separate client that sends no credentials at all.
- Retries are bounded (`max_attempts`): 429 waits for `Retry-After` (seconds or an HTTP date, as
  RFC 9110 allows), 5xx, timeouts and connection errors back off exponentially with full jitter.
- A *submission* (the call that costs money) is only retried when the vendor provably did not take
  it: a connection that never opened, 429, and 503 where the vendor's gateway answers it before the
  job exists (`submit_retry_statuses`; Runware documents 503 as possibly upstream, so not there).
  Everything else after the body left (a timeout, a reset, 500/502/504 from a gateway, an answer
  that cannot be read) is ambiguous: `AmbiguousSubmitError`, never re-sent here; the runner resolves
  it through the write-ahead intent. Errors carry `accepted=False` when the vendor provably did not
  take the job (a 4xx refusal, no connection, 429), which is what lets the runner forget an intent.
- Every message that leaves this module is passed through `redact`, so keys, secrets, Basic-auth
  tokens and presigned-URL signatures never reach logs, metadata or exception texts, even when a
  vendor echoes them back.
"""

from __future__ import annotations

import difflib
import email.utils
import functools
import json
import logging
import os
import random
import re
import ssl
import time
from typing import Any, Callable, Iterable, Mapping

import httpx

from . import pricing
from .base import GenerationRequest, ImageInput, JobHandle, ProviderError, RetryableProviderError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_BASE_S = 1.0
DEFAULT_BACKOFF_MAX_S = 60.0
MAX_RETRY_AFTER_S = 600.0  # a vendor asking for a longer pause fails the step (retry it later) instead
DEFAULT_MAX_GLB_BYTES = 512 * 1024 * 1024  # Rodin HighPack output (4K textures, high-poly) stays well below
DEFAULT_POLL_INTERVAL_S = 5.0
DEFAULT_DEADLINE_S = 3600.0
DEFAULT_SETTLE_S = 10.0
DEFAULT_MISSING_GRACE_S = 300.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SUBMIT_RETRY_STATUSES = frozenset({429, 503})  # answered before a job exists (see the module docstring)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process (httpx would load it for every client, ~40 ms each)."""
    return httpx.create_ssl_context()


def _sleep(seconds: float) -> None:
    """The one place this module waits (tests replace it to record waits instead of sleeping)."""
    time.sleep(seconds)


class ProviderHttpError(ProviderError):
    """A vendor answered with an HTTP error; `status` is kept so callers can react (e.g. 403 = expired URL)."""

    def __init__(self, message: str, status: int | None = None, *, accepted: bool | None = None):
        super().__init__(message, accepted=accepted)
        self.status = status


class RetryableHttpError(RetryableProviderError):
    def __init__(self, message: str, status: int | None = None, *, accepted: bool | None = None):
        super().__init__(message, accepted=accepted)
        self.status = status


class AmbiguousSubmitError(ProviderError):
    """The submission was sent but no usable answer came back: the vendor may have accepted (and billed) it."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# Query parameters of presigned URLs that are credentials (AWS SigV4/SigV2, GCS, Azure SAS).
_SIGNATURE_PARAMS = re.compile(
    r"((?<![A-Za-z0-9_-])(?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential|"
    r"Signature|AWSAccessKeyId|sig|se)=)[^&\s\"'<>]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _SIGNATURE_PARAMS.sub(r"\1[redacted]", text)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform(0, base * 2^n)."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** attempt)))


def vendor_message(response: httpx.Response) -> str:
    """The human part of a vendor's error body, whatever shape the vendor uses."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()
        return text[:300] if text and not text.lstrip().startswith("<") else ""
    return message_from_json(body)


def message_from_json(body: Any) -> str:
    if isinstance(body, list):
        return "; ".join(filter(None, (message_from_json(item) for item in body[:3])))
    if not isinstance(body, dict):
        return str(body)[:300] if body is not None else ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return message_from_json(errors)
    parts: list[str] = []
    for key in ("error", "code", "message", "messege", "detail", "text", "msg"):
        value = body.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
        elif isinstance(value, dict):
            nested = message_from_json(value)
            if nested:
                parts.append(nested)
    return ": ".join(parts)[:500]


class HttpClient:
    """httpx with Kiln's retry policy, error wording and redaction for one provider."""

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        key_hint: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        submit_retry_statuses: frozenset[int] = SUBMIT_RETRY_STATUSES,
    ):
        self.provider = provider
        self.submit_retry_statuses = submit_retry_statuses
        self.secrets = tuple(s for s in secrets if s)
        self.key_hint = key_hint
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, DEFAULT_CONNECT_TIMEOUT_S))
        self._api = httpx.Client(base_url=base_url, headers=dict(headers or {}), timeout=timeout,
                                 follow_redirects=False, verify=_ssl_context())
        self._files = httpx.Client(timeout=timeout, follow_redirects=True, verify=_ssl_context())

    def close(self) -> None:
        self._api.close()
        self._files.close()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    # ------------------------------------------------------------------------------------------

    def request(self, method: str, url: str, *, what: str, idempotent: bool = True,
                ok: Callable[[httpx.Response], bool] | None = None, **kwargs: Any) -> httpx.Response:
        """Send with retries; returns a 2xx response (or one `ok` accepts), else raises a clear error.

        `what` names the call in messages ("submit", "poll job 123"); `idempotent=False` marks a
        submission, which is not re-sent after an ambiguous failure (see the module docstring).
        Every error raised for an idempotent call says `accepted=False`: it is not the paid call.
        """
        retry_statuses = RETRY_STATUSES if idempotent else self.submit_retry_statuses
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.max_attempts
            try:
                response = self._api.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never reached the vendor: safe to retry even a submission.
                self._wait_or_raise(last, attempt, what, f"cannot connect ({type(exc).__name__})", None)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if not idempotent:
                    raise AmbiguousSubmitError(self.redact(
                        f"{self.provider}: {what} was sent but no answer came back ({type(exc).__name__})"
                    )) from None
                self._wait_or_raise(last, attempt, what, f"{type(exc).__name__}", None)
                continue
            if ok is not None and ok(response):
                return response
            if response.is_success:
                return response
            if not idempotent and response.status_code >= 500 and response.status_code not in retry_statuses:
                detail = vendor_message(response)
                raise AmbiguousSubmitError(self.redact(
                    f"{self.provider}: {what} got HTTP {response.status_code}{f' ({detail})' if detail else ''}, "
                    "which a gateway can send after the vendor took the job"
                ), response.status_code)
            if response.status_code in retry_statuses:
                # Retry-After comes with 429 and, by RFC 9110, may come with 503 too.
                delay = retry_after_seconds(response.headers.get("Retry-After"))
                if delay is not None and delay > MAX_RETRY_AFTER_S:
                    raise RetryableHttpError(self.redact(
                        f"{self.provider}: {what} got HTTP {response.status_code}; the vendor asks to wait "
                        f"{delay:.0f} s, longer than Kiln waits inline ({MAX_RETRY_AFTER_S:.0f} s). "
                        "Retry the step later or lower the concurrency limit for this provider."
                    ), response.status_code, accepted=False)
                reason = f"HTTP {response.status_code}"
                detail = vendor_message(response)
                if detail:
                    reason += f" ({detail})"
                self._wait_or_raise(last, attempt, what, reason, delay, status=response.status_code)
                continue
            raise self.http_error(response, what)

    def _wait_or_raise(self, last: bool, attempt: int, what: str, reason: str, delay: float | None,
                       status: int | None = None) -> None:
        if last:
            raise RetryableHttpError(self.redact(
                f"{self.provider}: {what} failed after {attempt} attempts: {reason}. "
                "The vendor may be having a bad day; the step can be retried (a recorded job is resumed, "
                "not paid for again)."
            ), status, accepted=False)
        if delay is None:
            delay = backoff_seconds(attempt - 1, self.backoff_base_s, self.backoff_max_s)
        logger.warning("%s", self.redact(
            f"{self.provider}: {what}: {reason}; retrying in {delay:.2f} s (attempt {attempt + 1}/{self.max_attempts})"
        ))
        _sleep(delay)

    def http_error(self, response: httpx.Response, what: str) -> ProviderHttpError:
        """A non-retryable vendor error with a message that says what to do about it."""
        status = response.status_code
        detail = vendor_message(response)
        detail_txt = f": {detail}" if detail else ""
        hint = {
            400: "the vendor rejected the request as invalid",
            401: f"the vendor rejected the credentials; check {self.key_hint or 'the API key'}",
            402: "the vendor account is out of balance; top up the account (Kiln does not retry this)",
            403: f"the credentials lack permission for this call; check {self.key_hint or 'the API key'} "
                 "and the account's plan",
            404: "not found at the vendor (wrong base_url, or the job/file expired)",
            413: "the request is too large for the vendor (use smaller concept images)",
            422: "the vendor rejected a parameter value",
        }.get(status, "the vendor refused the request")
        return ProviderHttpError(self.redact(
            f"{self.provider}: {what} failed with HTTP {status}{detail_txt} ({hint})"
        ), status, accepted=False if status < 500 else None)

    def json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            snippet = self.redact(response.text[:200])
            raise RetryableProviderError(
                f"{self.provider}: {what} returned HTTP {response.status_code} with a body that is not JSON: "
                f"{snippet!r}"
            ) from None

    # ------------------------------------------------------------------------------------------

    def download(self, url: str, *, what: str, max_bytes: int, headers: Mapping[str, str] | None = None,
                 retry_statuses: frozenset[int] = RETRY_STATUSES) -> bytes:
        """GET a result file with retries; checks the status, the size limit and the full length.

        Sends no vendor credentials unless `headers` says so (result URLs are pre-signed CDN links).
        """
        where = _url_for_message(url)
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.max_attempts
            try:
                with self._files.stream("GET", url, headers=dict(headers or {})) as response:
                    if response.status_code in retry_statuses:
                        delay = retry_after_seconds(response.headers.get("Retry-After"))
                        self._wait_or_raise(last, attempt, what, f"HTTP {response.status_code} from {where}",
                                            delay, status=response.status_code)
                        continue
                    if response.status_code != 200:
                        response.read()
                        if response.status_code in (401, 403, 410):
                            raise ProviderHttpError(self.redact(
                                f"{self.provider}: {what}: HTTP {response.status_code} from {where} "
                                "(the download link has probably expired; re-running resumes the recorded job)"
                            ), response.status_code)
                        raise self.http_error(response, f"{what} from {where}")
                    declared = response.headers.get("Content-Length")
                    expected = int(declared) if declared and declared.isdigit() else None
                    if expected is not None and expected > max_bytes:
                        raise ProviderError(
                            f"{self.provider}: {what}: the file is {expected} bytes, over the "
                            f"{max_bytes}-byte limit (raise the provider option max_glb_bytes if this is expected)"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise ProviderError(
                                f"{self.provider}: {what}: the file exceeds the {max_bytes}-byte limit "
                                "(raise the provider option max_glb_bytes if this is expected)"
                            )
                        chunks.append(chunk)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                # Includes a body cut short of its Content-Length (httpx raises RemoteProtocolError).
                self._wait_or_raise(last, attempt, what, f"{type(exc).__name__} while downloading from {where}",
                                    None)
                continue
            data = b"".join(chunks)
            if expected is not None and len(data) != expected:
                self._wait_or_raise(last, attempt, what,
                                    f"truncated download: {len(data)} of {expected} bytes from {where}", None)
                continue
            return data


def _url_for_message(url: str) -> str:
    """Host and path only: query strings of pre-signed URLs carry temporary credentials."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # noqa: BLE001 - a malformed URL is reported as such
        return "<invalid URL>"
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}{parsed.path}"


def same_origin(a: str, b: str) -> bool:
    ua, ub = httpx.URL(a), httpx.URL(b)
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


# ----------------------------------------------------------------------------------------------
# The base every vendor client builds on


class RemoteProvider:
    """Shared behaviour of the HTTP providers: options, credentials from the environment, the client.

    Constructor `options` are client settings and defaults for the generation parameters (run config);
    `request.options` (from `asset.toml`) override the generation parameters per asset.
    """

    name: str = ""
    model: str = ""
    default_base_url: str = ""
    key_vars: tuple[str, ...] = ()
    image_urls_only = False  # True: the vendor only takes image URLs (presigned S3 GET URLs)
    generation_options: frozenset[str] = frozenset()
    paid = True
    can_lookup = False  # only vendors whose API takes a client-chosen id and answers for it
    lookup_window_s = 0.0
    submit_retry_statuses = SUBMIT_RETRY_STATUSES
    CLIENT_OPTIONS = frozenset({
        "poll_interval_s", "deadline_s", "timeout_s", "max_attempts", "backoff_base_s", "backoff_max_s",
        "max_glb_bytes", "price_usd", "usd_per_credit", "settle_s", "missing_grace_s",
    })

    def __init__(self, *, base_url: str | None = None, options: dict[str, Any] | None = None):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.options = dict(options or {})
        unknown = set(self.options) - self.CLIENT_OPTIONS - self.generation_options
        if unknown:
            raise ProviderError(self._unknown_options_message(unknown, "run config"))
        self.poll_interval_s = self._float_option("poll_interval_s", DEFAULT_POLL_INTERVAL_S)
        self.deadline_s = self._float_option("deadline_s", DEFAULT_DEADLINE_S)
        self.max_glb_bytes = int(self._float_option("max_glb_bytes", DEFAULT_MAX_GLB_BYTES))
        # A submission that vanished in transit may still be on its way into the vendor's queue:
        # a look-up only proves "never arrived" this long after sending.
        self.settle_s = self._float_option("settle_s", DEFAULT_SETTLE_S)
        # A vendor restarting can forget in-flight jobs for a while; a paid job is not given up sooner.
        self.missing_grace_s = self._float_option("missing_grace_s", DEFAULT_MISSING_GRACE_S)
        self._http: HttpClient | None = None

    def _float_option(self, key: str, default: float) -> float:
        value = self.options.get(key, default)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ProviderError(f"{self.name}: option {key}={value!r} is not a number") from None
        if out <= 0:
            raise ProviderError(f"{self.name}: option {key}={value!r} must be positive")
        return out

    def _unknown_options_message(self, unknown: set[str], where: str) -> str:
        allowed = ", ".join(sorted(self.generation_options | self.CLIENT_OPTIONS))
        return (f"{self.name}: unknown option(s) {', '.join(sorted(unknown))} in the {where}; "
                f"allowed: {allowed}")

    def merged_options(self, request: GenerationRequest) -> dict[str, Any]:
        """Generation parameters: run-config defaults, then the asset's own options."""
        unknown = set(request.options) - self.CLIENT_OPTIONS - self.generation_options
        if unknown:
            raise ProviderError(self._unknown_options_message(unknown, f"options of asset {request.asset_id!r}"))
        merged = {k: v for k, v in self.options.items() if k in self.generation_options}
        merged.update({k: v for k, v in request.options.items() if k in self.generation_options})
        return merged

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """Keys from the environment only; a missing one fails before any request, naming the variable."""
        missing = [var for var in self.key_vars if not os.environ.get(var)]
        if missing:
            raise ProviderError(
                f"{self.name}: environment variable {' and '.join(missing)} is not set; export the vendor "
                "API credentials in the environment of the Dagster code location (in Dagster config use "
                f"EnvVar(\"{missing[0]}\"); keys are never read from files or run config)"
            )
        return {var: os.environ[var] for var in self.key_vars}

    def require_credentials(self) -> None:
        self.credentials()

    def needs_image_urls(self, request: GenerationRequest) -> bool:
        return self.image_urls_only and bool(request.images)

    def new_client_id(self) -> str | None:
        return None  # most vendors name the job themselves, in the answer

    def lookup(self, client_id: str, request_hash: str) -> JobHandle | None:
        raise ProviderError(f"{self.name}: the vendor cannot be asked about a submission Kiln did not hear back from")

    def credits_usd(self, credits: Any) -> float | None:
        """Vendor credits in USD, when the account's credit price is configured (option or environment)."""
        raw = self.options.get("usd_per_credit", os.environ.get(f"KILN_{self.name.upper()}_USD_PER_CREDIT"))
        if raw in (None, "") or not isinstance(credits, (int, float)) or isinstance(credits, bool):
            return None
        try:
            return round(float(credits) * float(raw), 4)
        except (TypeError, ValueError):
            raise ProviderError(f"{self.name}: usd_per_credit={raw!r} is not a number of US dollars") from None

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {}

    def secrets(self, creds: dict[str, str]) -> list[str]:
        return list(creds.values())

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            creds = self.credentials()
            self._http = HttpClient(
                self.name,
                base_url=self.base_url,
                headers=self.auth_headers(creds),
                secrets=self.secrets(creds),
                key_hint=" and ".join(self.key_vars) or "the server address (base_url)",
                timeout_s=self._float_option("timeout_s", DEFAULT_TIMEOUT_S),
                max_attempts=int(self._float_option("max_attempts", DEFAULT_MAX_ATTEMPTS)),
                backoff_base_s=self._float_option("backoff_base_s", DEFAULT_BACKOFF_BASE_S),
                backoff_max_s=self._float_option("backoff_max_s", DEFAULT_BACKOFF_MAX_S),
                submit_retry_statuses=self.submit_retry_statuses,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- shared helpers ------------------------------------------------------------------------

    def cost_usd(self, params: dict[str, Any]) -> float:
        return pricing.price_usd(self.name, tier=params.get("tier"), options=self.options)

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        """Tier and seed as the vendor names them, for the generation's metadata."""
        return {"tier": params.get("tier"), "seed": params.get("seed")}

    def download_glb(self, url: str, what: str = "download the GLB") -> bytes:
        return self.http.download(url, what=what, max_bytes=self.max_glb_bytes)

    def download_result(self, handle: JobHandle, key: str, pick: Callable[[Any], str] = lambda v: v,
                        retry_statuses: frozenset[int] = RETRY_STATUSES) -> bytes:
        """Download the result link the last poll left in `handle.data[key]`.

        Result links are short-lived pre-signed URLs; when one has expired (401/403/410) the job is
        polled once more for a fresh link, instead of failing a job that was paid for.
        """
        for attempt in (1, 2):
            if key not in handle.data:
                status = self.poll(handle)
                if status.state != "succeeded":
                    raise ProviderError(
                        f"{self.name}: job {handle.job_id} has no result to download ({status.state})")
            url = pick(handle.data[key])
            try:
                return self.http.download(url, what=f"download the GLB of job {handle.job_id}",
                                          max_bytes=self.max_glb_bytes, retry_statuses=retry_statuses)
            except ProviderHttpError as exc:
                if attempt == 2 or exc.status not in (401, 403, 410):
                    raise
                logger.warning("%s: the result link of job %s expired; asking for a fresh one", self.name,
                               handle.job_id)
                handle.data.pop(key, None)
        raise AssertionError("unreachable")

    def check_views(self, request: GenerationRequest, *, max_views: int = 5, text_ok: bool = False) -> None:
        if len(request.images) > max_views:
            multi = "runware, scenario or pixazo (up to 5 views)"
            raise ProviderError(
                f"{self.name}: asset {request.asset_id!r} has {len(request.images)} views; this provider takes "
                + ("exactly one image (the API has a single image field): keep one view in the folder, or "
                   f"choose {multi}" if max_views == 1 else f"at most {max_views}"))
        if not request.images and not (text_ok and request.prompt):
            raise ProviderError(
                f"{self.name}: asset {request.asset_id!r} has no concept images and no prompt" if text_ok else
                f"{self.name}: asset {request.asset_id!r} has no concept image; this provider has no text-to-3D mode"
            )

    def image_urls(self, request: GenerationRequest) -> list[str]:
        missing = [img.name for img in request.images if not img.url]
        if missing:
            raise ProviderError(
                f"{self.name}: takes only image URLs, and views {', '.join(missing)} of asset "
                f"{request.asset_id!r} have none; run it through pipeline.providers.runner.generate with an "
                "S3 blob store (KILN_STORE_URI=s3://bucket/prefix) so they get presigned GET URLs"
            )
        return [img.url for img in request.images]  # type: ignore[misc]


def data_uri(image: ImageInput) -> str:
    import base64

    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode()}"


def check_int(name: str, provider: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ProviderError(f"{provider}: {name}={value!r} must be an integer")
    _check_range(name, provider, value, lo, hi)
    return value


def check_number(name: str, provider: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderError(f"{provider}: {name}={value!r} must be a number")
    _check_range(name, provider, value, lo, hi)
    return float(value)


def _check_range(name: str, provider: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"{lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'}"
        raise ProviderError(f"{provider}: {name}={value!r} is out of range; the vendor documents {rng}")


def check_bool(name: str, provider: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProviderError(f"{provider}: {name}={value!r} must be true or false")
    return value


def check_choice(name: str, provider: str, value: Any, choices: Iterable[str]) -> str:
    """One of the vendor's documented values; a near miss names the value that was probably meant."""
    choices = tuple(choices)
    if value not in choices:
        hint = ""
        if isinstance(value, str):
            by_case = {c.lower().replace(" ", "").replace("-", ""): c for c in choices}
            close = by_case.get(value.lower().replace(" ", "").replace("-", "").replace("_", ""))
            close = close or next(iter(difflib.get_close_matches(value, choices, n=1, cutoff=0.6)), None)
            hint = f" (did you mean {close!r}?)" if close else ""
        raise ProviderError(f"{provider}: {name}={value!r} is not one of {', '.join(map(repr, choices))}{hint}",
                            accepted=False)
    return value


def check_str(name: str, provider: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ProviderError(f"{provider}: {name}={value!r} must be a string")
    return value
