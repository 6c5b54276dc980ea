"""Prometheus metrics: the token that guards them, what they count, several workers.

Invariants:
- ``/metrics`` answers only the bearer of ``SOFTWARE_DNA_METRICS_TOKEN``: with no
  token configured it answers exactly as a path that does not exist (404); with
  one, anything else (nothing, a wrong token, another scheme, the admin API key)
  gets 401 ``unauthorized``.
- Counters move by exactly what was done: a validation, a refusal, an activation.
- Label values come from bounded, server-held sets: route templates (never a
  path a client sent), known methods, protocol codes; no key, secret, id,
  address or e-mail address appears in any label.
- With several worker processes sharing ``PROMETHEUS_MULTIPROC_DIR``, a scrape
  answered by any of them counts the requests of all of them.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from fastapi.routing import iter_route_contexts
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from software_dna.server.config import ConfigError, Settings
from software_dna.server.db import make_engine
from software_dna.server.metricsdir import MULTIPROC_ENV, metrics_directory, worker_exited
from software_dna.server.models import OutboxItem
from software_dna.server.services import outbox, utcnow
from software_dna.server.testing import InProcessServer, LocalServer
from tests.fixtures_server import PgDatabases

from .helpers import Api

TOKEN = "metrics-" + secrets.token_hex(16)
VALIDATE = "/v1/activations/{activation_id}/validate"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(http: requests.Session, url: str, token: str = TOKEN) -> Samples:
    answer = http.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"},
                      timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return _parse(answer.text)


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("metrics"),
                         env={"SOFTWARE_DNA_METRICS_TOKEN": TOKEN}) as srv:
        yield srv


def test_no_token_configured_is_a_404_like_any_unknown_path(tmp_path: Path) -> None:
    with InProcessServer(tmp_path) as srv, srv.session() as http:
        absent = http.get(f"{srv.url}/no-such-path", timeout=30)
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"},
                        {"Authorization": f"Bearer {srv.admin_key}"}):
            answer = http.get(f"{srv.url}/metrics", headers=headers, timeout=30)
            assert answer.status_code == 404
            assert answer.json() == absent.json()


def test_only_the_metrics_token_reads_the_metrics(metered: InProcessServer) -> None:
    with metered.session() as http:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Bearer {TOKEN[:-1]}"},
                        {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {metered.admin_key}"},  # never the admin key
                        {"Authorization": f"Bearer {TOKEN}\u00e9"}):
            answer = http.get(f"{metered.url}/metrics", headers=headers, timeout=30)
            assert answer.status_code == 401, headers
            assert answer.json()["error"]["code"] == "unauthorized"
            assert "software_dna_" not in answer.text
        assert scrape(http, metered.url)  # the right one does


def test_a_weak_metrics_token_is_refused() -> None:
    for weak in ("short", "with spaces in the middle ok", "\u00e9" * 20):
        with pytest.raises(ConfigError, match="SOFTWARE_DNA_METRICS_TOKEN"):
            Settings.from_env({"SOFTWARE_DNA_METRICS_TOKEN": weak})


def test_counters_move_for_validations_refusals_and_activations(
        metered: InProcessServer) -> None:
    admin = metered.admin
    product = "p-" + secrets.token_hex(4)
    admin.setup_product(product, name="Metered")
    lic = admin.issue_license(product, seats=2)
    api = Api.for_server(metered)
    email = f"someone.{secrets.token_hex(3)}@example.org"
    with metered.session() as http:
        before = scrape(http, metered.url)
        made = api.activate(product, lic["license_key"], machine="a", email=email, consent=True)
        assert made.status_code == 201, made.text
        activation = made.json()
        refused_activation = api.activate(product, "WRONG-" + secrets.token_hex(8), machine="b")
        assert refused_activation.status_code >= 400
        refused_code = refused_activation.json()["error"]["code"]
        ok = api.validate(activation["activation_id"], activation["activation_secret"],
                          machine="a")
        assert ok.status_code == 200, ok.text
        wrong = api.validate(activation["activation_id"], "not-the-secret", machine="a")
        assert wrong.status_code == 401
        after = scrape(http, metered.url)
    api.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("software_dna_activations_total", outcome="ok") == 1
    assert moved("software_dna_activations_total", outcome=refused_code) == 1
    assert moved("software_dna_validations_total", outcome="ok") == 1
    assert moved("software_dna_validations_total", outcome="unauthorized") == 1
    assert moved("software_dna_refusals_total", code="unauthorized") == 1
    assert moved("software_dna_refusals_total", code=refused_code) == 1
    assert moved("software_dna_http_requests_total", method="POST", route=VALIDATE,
                 status="200") == 1
    assert moved("software_dna_http_requests_total", method="POST", route=VALIDATE,
                 status="401") == 1
    assert moved("software_dna_http_requests_total", method="POST", route="/v1/activations",
                 status="201") == 1
    assert moved("software_dna_http_request_duration_seconds_count", route=VALIDATE) == 2
    assert moved("software_dna_http_request_duration_seconds_bucket", route=VALIDATE,
                 le="+Inf") == 2
    # What never goes into a label: the key, the secret, the ids, the address, the client.
    forbidden = [lic["license_key"], lic["id"], activation["activation_id"],
                 activation["activation_secret"], email, "127.0.0.1", "testclient"]
    for _name, labels in after:
        for _label, text in labels:
            assert not any(secret in text for secret in forbidden), (labels, forbidden)


def test_labels_are_route_templates_and_known_methods(metered: InProcessServer) -> None:
    odd = secrets.token_hex(8)
    routes = {getattr(r, "path", "") for r in iter_route_contexts(metered.app.routes)}
    with metered.session() as http:
        http.get(f"{metered.url}/v1/{odd}/nowhere?email=a@example.org", timeout=30)
        http.post(f"{metered.url}/v1/activations/act_{odd}/validate", json={}, timeout=30)
        http.request("BREW", f"{metered.url}/v1/health", timeout=30)
        samples = scrape(http, metered.url)
    for _name, labels in samples:
        found = dict(labels)
        assert odd not in str(found)
        if "route" in found:
            assert found["route"] in routes | {"unmatched"}, found
        if "method" in found:
            assert found["method"] in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                       "OPTIONS", "other"}, found
    assert value(samples, "software_dna_http_requests_total", method="GET", route="unmatched",
                 status="404") >= 1
    assert value(samples, "software_dna_http_requests_total", method="other",
                 route="/v1/health", status="405") >= 1
    assert value(samples, "software_dna_http_requests_total", method="POST", route=VALIDATE,
                 status="400") >= 1


def test_outbox_backlog_and_pool_are_read_when_scraped(metered: InProcessServer) -> None:
    state = metered.app.state.sdna
    with metered.session() as http:
        before = scrape(http, metered.url)
        session = state.sessions()
        try:
            item = outbox.enqueue(session, None, channel=outbox.WEBHOOK, topic="test.metrics",
                                  payload={"n": 1})
            assert item is not None
            session.flush()
            # Queued an hour ago (and due since): the age is read from the row.
            session.execute(update(OutboxItem).where(OutboxItem.id == item.id).values(
                created_at=utcnow() - timedelta(hours=1)))
            session.commit()
        finally:
            session.close()
        after = scrape(http, metered.url)
    assert value(after, "software_dna_database_up") == 1
    assert (value(after, "software_dna_outbox_due_items")
            == value(before, "software_dna_outbox_due_items") + 1)
    assert value(after, "software_dna_outbox_oldest_due_age_seconds") >= 3600
    assert value(after, "software_dna_db_pool_size", pool="main") == state.engine.pool.size()


def test_metrics_directory_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_directory(1) as folder:
        assert folder is None and MULTIPROC_ENV not in os.environ
    with metrics_directory(2) as folder:
        assert folder is not None and folder.is_dir() and not any(folder.iterdir())
        assert os.environ[MULTIPROC_ENV] == str(folder)
    assert not folder.exists() and MULTIPROC_ENV not in os.environ
    given = tmp_path / "operator"
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with metrics_directory(4) as folder:
        assert folder == given and given.is_dir()
    assert given.is_dir()  # the operator's folder is left where it is


def live_pids(folder: Path) -> set[int]:
    """The worker processes whose live gauges are in ``folder``."""
    return {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("gauge_livesum_*.db")}


def test_two_worker_processes_are_summed(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {MULTIPROC_ENV: str(shared), "SOFTWARE_DNA_METRICS_TOKEN": TOKEN}
    with LocalServer(tmp_path / "server", workers=2, env=env) as srv:
        engine = make_engine(srv.settings)
        pool_size = engine.pool.size()  # type: ignore[attr-defined]
        engine.dispose()
        with requests.Session() as http:  # the start-up probes count too
            probes = value(scrape(http, srv.url), "software_dna_http_requests_total",
                           method="GET", route="/v1/health", status="200")
        sent = 0

        def writers() -> set[str]:
            return {p.stem.rsplit("_", 1)[1] for p in shared.glob("counter_*.db")}

        # A new connection per request: the kernel hands them to either worker.
        while sent < 400 and (sent < 20 or len(writers()) < 2):
            assert requests.get(f"{srv.url}/v1/health", timeout=30).status_code == 200
            sent += 1
        assert len(writers()) == 2, "only one worker answered"
        for _ in range(6):  # each scrape is answered by one worker or the other
            with requests.Session() as http:
                samples = scrape(http, srv.url)
            assert value(samples, "software_dna_http_requests_total", method="GET",
                         route="/v1/health", status="200") == probes + sent
            # A live gauge: both workers' pools.
            assert value(samples, "software_dna_db_pool_size", pool="main") == 2 * pool_size
        pids = live_pids(shared)
        assert len(pids) == 2
        # A worker killed outright never says it left: the next scrape finds it gone.
        killed = min(pids)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(live_pids(shared) - {killed}) < 2:  # the supervisor starts a new one
            assert time.monotonic() < deadline, "no worker replaced the killed one"
            time.sleep(0.1)
        with requests.Session() as http:
            samples = scrape(http, srv.url)
        assert killed not in live_pids(shared)
        assert value(samples, "software_dna_db_pool_size", pool="main") == 2 * pool_size
        assert value(samples, "software_dna_http_requests_total", method="GET",
                     route="/v1/health", status="200") >= probes + sent  # its counts stay
    # Each worker, stopping, took its live gauges out of the sum.
    assert not list(shared.glob("gauge_livesum_*.db"))
    assert (shared / f"counter_{killed}.db").exists()  # the totals stay, the killed one's too
    worker_exited(12345)  # no such worker: nothing happens


def test_server_run_with_workers_makes_the_shared_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with LocalServer(tmp_path, workers=2, env={"SOFTWARE_DNA_METRICS_TOKEN": TOKEN}) as srv:
        engine = make_engine(srv.settings)
        pool_size = engine.pool.size()  # type: ignore[attr-defined]
        engine.dispose()

        def pools() -> float:
            with requests.Session() as http:  # a new connection: either worker answers
                return value(scrape(http, srv.url), "software_dna_db_pool_size", pool="main")

        deadline = time.monotonic() + 60
        while pools() != 2 * pool_size:  # until the second worker has started
            assert time.monotonic() < deadline, "the two workers' pools are not summed"
            time.sleep(0.1)
        for _ in range(8):  # whichever worker answers, it sums both
            assert pools() == 2 * pool_size


@pytest.mark.postgres
def test_postgresql_fast_path_is_counted_and_its_pool_shown(
        tmp_path: Path, pg_databases: PgDatabases) -> None:
    with InProcessServer(tmp_path, database_url=pg_databases.create(),
                         env={"SOFTWARE_DNA_METRICS_TOKEN": TOKEN}) as srv:
        product = "p-" + secrets.token_hex(4)
        srv.admin.setup_product(product, name="Metered")
        lic = srv.admin.issue_license(product)
        api = Api.for_server(srv)
        with srv.session() as http:
            made = api.activate(product, lic["license_key"], machine="a").json()
            before = scrape(http, srv.url)
            for _ in range(3):
                assert api.validate(made["activation_id"], made["activation_secret"],
                                    machine="a").status_code == 200
            after = scrape(http, srv.url)
        api.close()
    assert (value(after, "software_dna_validations_total", outcome="ok")
            - value(before, "software_dna_validations_total", outcome="ok")) == 3
    assert value(after, "software_dna_db_pool_size", pool="inline") == 1
    assert value(after, "software_dna_db_pool_size", pool="main") == srv.settings.db_pool_size
    assert value(after, "software_dna_database_up") == 1
