"""The API fuzzed from its own OpenAPI spec (schemathesis), against a live server on the small store with a
viewer's token: whatever the generated request, no 500 and no response that breaks the spec (status codes, JSON
shapes, content types). Bounded: a fixed number of examples per route."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from schemathesis.specs.openapi.checks import positive_data_acceptance

from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings

pytestmark = pytest.mark.slow
EXAMPLES_PER_ROUTE = 20


@pytest.fixture(scope="module")
def live(small_store: Path, serve: Callable[..., str]) -> tuple[str, str]:
    url = serve(small_store, ServiceSettings(requests_per_minute=100_000))
    return url, f"Bearer {create_token(small_store, Role.viewer, 'fuzz')[1]}"


def test_no_request_breaks_the_api(live: tuple[str, str]) -> None:
    """Each route's generated cases (valid and invalid fields alike), checked by schemathesis's own checks but one:
    "schema-valid data is accepted" cannot hold, since what makes an upload valid (a real JPEG, a box inside the
    frame, an ISO time) is checked by content, beyond what OpenAPI can say; those refusals are 4xx, never 500."""
    url, token = live
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    routes = []
    for result in schema.get_all_operations():
        operation = result.ok()
        routes.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"Authorization": token}, timeout=120, excluded_checks=[positive_data_acceptance]
            )
            assert response.status_code < 500

        check()
    assert "POST /api/v1/search" in routes and "GET /api/v1/frames/{detection_id}" in routes
