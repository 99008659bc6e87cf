"""GET /metrics: Prometheus' text format, read back with prometheus_client's own parser; the same
token rules as the API, or open to a scraper on this machine when the server is told so."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from searchd.config import Config
from searchd.web import create_app

from .test_web import web_index  # noqa: F401  (the module's index fixture)

TOKEN = "metrics-token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}"""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client: FlaskClient, **kw) -> dict:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/plain" and response.headers["Cache-Control"] == "no-store"
    return samples(response.get_data(as_text=True))


def client_for(index: tuple[Path, Path], **settings) -> FlaskClient:
    folder, index_dir = index
    return create_app(Config(folder=folder, index_dir=index_dir, **settings)).test_client()


def test_requests_errors_latency_and_the_index_are_counted(web_index: tuple[Path, Path]) -> None:  # noqa: F811
    client = client_for(web_index)
    for q in ("solar", "wind", "solar"):  # the repeat is answered from the response cache
        assert client.get(f"/api/search?q={q}").status_code == 200
    assert client.get("/api/search?size=0&q=x").status_code == 400
    assert client.get("/api/doc/nothing/here.txt").status_code == 404
    figures = scrape(client)
    assert figures[("searchd_http_requests_total", (("route", "/api/search"), ("status", "200")))] == 3
    assert figures[("searchd_http_requests_total", (("route", "/api/search"), ("status", "400")))] == 1
    assert figures[("searchd_http_requests_total", (("route", "/api/doc/<path:doc_id>"), ("status", "404")))] == 1
    assert not any(name == "searchd_http_errors_total" for name, _ in figures)  # no 5xx yet
    assert figures[("searchd_http_request_duration_seconds_count", (("route", "/api/search"),))] == 4
    assert figures[("searchd_search_duration_seconds_count", ())] == 2  # two searches ran
    assert figures[("searchd_documents", ())] == 27
    assert figures[("searchd_worker_snapshot_documents", ())] == 27
    assert figures[("searchd_web_workers", ())] == 1
    assert figures[("searchd_status", (("status", "ok"),))] == 1  # no daemon ran: what the index says


def test_metrics_need_the_token_like_the_api(web_index: tuple[Path, Path]) -> None:  # noqa: F811
    client = client_for(web_index, token=TOKEN)
    denied = client.get("/metrics")
    assert denied.status_code == 401 and denied.get_json()["error"]["code"] == "unauthorized"
    assert scrape(client, headers={"Authorization": f"Bearer {TOKEN}"})[("searchd_documents", ())] == 27


@pytest.mark.parametrize("peer, allowed", [("127.0.0.1", True), ("::1", True), ("10.1.2.3", False)])
def test_open_metrics_let_a_local_scraper_in_without_the_token(web_index: tuple[Path, Path],  # noqa: F811
                                                               peer: str, allowed: bool) -> None:
    client = client_for(web_index, token=TOKEN, open_metrics=True)
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == (200 if allowed else 401), peer
    # Only /metrics: the API still wants the token from everyone.
    assert client.get("/api/search?q=solar", environ_base={"REMOTE_ADDR": peer}).status_code == 401
