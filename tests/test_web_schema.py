"""schemathesis against /api/openapi.json: generated requests to every API operation, on a real
index, must never get a 5xx and every response must match the schema it documents."""

from __future__ import annotations

from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from searchd.config import Config
from searchd.web import create_app, serving

from .conftest import build_index, write_files
from .test_web import web_articles

pytestmark = pytest.mark.slow

EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The description as a client fetches it from a live waitress server (real HTTP, gzip and
    all), on an index of real files."""
    root = tmp_path_factory.mktemp("schema")
    folder = write_files(root / "articles", web_articles())
    build_index(folder, root / "index")
    with serving(create_app(Config(folder=folder, index_dir=root / "index"))) as url:
        yield schemathesis.openapi.from_url(f"{url}/api/openapi.json")


WITH_PARAMETERS = ["/api/search", "/api/suggest", "/api/doc/{id}", "/api/similar/{id}"]
CASES = [(path, GenerationMode.POSITIVE) for path in [*WITH_PARAMETERS, "/healthz", "/metrics", "/api/openapi.json"]] + [
    (path, GenerationMode.NEGATIVE) for path in WITH_PARAMETERS  # nothing to get wrong without parameters
]


@pytest.mark.parametrize("path, mode", CASES, ids=[f"{m.value}-{p}" for p, m in CASES])
def test_api_matches_its_openapi_description(api_schema, path: str, mode: GenerationMode) -> None:
    """Valid requests (positive) and schema-violating ones (negative): either way no 5xx, and the
    answer (data or a 4xx error) is what the description says. A request the description allows
    is never refused with a 400 (ST202: the description and the server agree on what is valid)."""
    operation = api_schema[path]["GET"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        # Invalid input must also be refused with a 4xx, never silently accepted.
        extra = negative_data_rejection if mode is GenerationMode.NEGATIVE else positive_data_acceptance
        case.call_and_validate(checks=[*CHECKS, extra])

    check()


@pytest.mark.parametrize("path, path_parameters, query", [
    ("/api/search", {}, {"q": "solar", "size": 100}),
    ("/api/search", {}, {"q": "photovoltaik", "sort": "date", "category": "energy", "from": "2023", "to": "2024-06"}),
    ("/api/search", {}, {"q": '"unbalanced'}),
    ("/api/suggest", {}, {"q": "rooftop photo"}),
    ("/api/doc/{id}", {"id": "world/hostile.json"}, {"q": "solar claims"}),
    ("/api/doc/{id}", {"id": "energy/solar-00.md"}, {}),
    ("/api/similar/{id}", {"id": "energy/solar-00.md"}, {"size": 3}),
])
def test_real_answers_match_the_description(api_schema, path: str, path_parameters: dict, query: dict) -> None:
    """Generated ids rarely exist: these known ones make sure full answers (hits, facets, marked
    articles, similar lists) are checked against the schema too."""
    case = api_schema[path]["GET"].Case(path_parameters=path_parameters, query=query)
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 200
