"""Schema-driven fuzz: schemathesis generates requests from the OpenAPI document; none may get a 5xx.

Runs schemathesis programmatically (one hypothesis run per operation and mode) rather than through its pytest
plugin, which does not load under pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from recommender.service.app import create_app

from .service_helpers import AUTH, make_settings, service_root

# The real packaged model builds the demo index these tests serve.
pytestmark = pytest.mark.slow

EXAMPLES = 20  # per operation and mode: 9 operations x 2 modes x 20 = 360 requests


@pytest.fixture(scope="module")
def api_schema(demo_root, tmp_path_factory, embedder):
    """The OpenAPI document of an app over a private copy of the demo build (writes authorised)."""
    root = service_root(demo_root, tmp_path_factory.mktemp("fuzz"))
    app = create_app(make_settings(root, max_text_chars=500), embedder=embedder)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(api_schema, mode):
    """Every operation, with schema-valid (positive) and schema-breaking (negative) input: never a 5xx."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error])
            calls.append(response.status_code)

        try:
            run()
        except Unsatisfiable:
            # Routes without parameters or body (/healthz, /readyz, /metrics) have no invalid input to make.
            assert mode == GenerationMode.NEGATIVE and operation.path in {"/healthz", "/readyz", "/metrics"}
    assert calls and max(calls) < 500
