"""Failures are classified once: bad data fails at once in one line, only transient faults retry."""

from __future__ import annotations

import dagster as dg
import pytest

from pipeline.assets.common import classified_failures
from pipeline.geometry.glb import GlbError
from pipeline.providers.base import ProviderError, RetryableProviderError


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _run(instance, exc: BaseException):
    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0))
    def stage(context) -> None:
        with classified_failures(context, "stage"):
            raise exc

    result = dg.materialize([stage], instance=instance, raise_on_error=False)
    kinds = [e.event_type_value for e in result.all_events]
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return kinds.count("STEP_UP_FOR_RETRY"), failure.event_specific_data.user_failure_data.description


@pytest.mark.parametrize("exc, retries, expected", [
    (GlbError("meshes[0].primitives[0]: index 9 is out of range for 3 vertices"), 0, "stage: meshes[0].primitives[0]"),
    (ValueError("LOD ratios must fall\nstrictly"), 0, "stage: LOD ratios must fall strictly"),
    (ProviderError("runware: steps=500 is out of range"), 0, "stage: runware: steps=500"),
    (RetryableProviderError("runware: HTTP 503"), 2, "stage: runware: HTTP 503"),
    (ConnectionResetError("connection reset by peer"), 2, "ConnectionResetError: connection reset by peer"),
    (KeyError("lod_sha256"), 0, "stage: internal error (KeyError); not retried, the stack trace is in the step log"),
])
def test_only_transient_faults_are_retried_and_every_message_is_one_line(instance, exc, retries, expected):
    count, description = _run(instance, exc)
    assert count == retries
    assert expected in description and "\n" not in description and "Traceback" not in description
