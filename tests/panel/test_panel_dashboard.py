"""The dashboard: figures and the server-drawn SVG charts, from real activations and validations."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from html import unescape
from typing import Any

import pytest

from software_dna.server import services as service
from software_dna.server.domain.roles import Role
from software_dna.server.panel import charts
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db
from tests.server.helpers import Api


def _figure(html: str, chart_id: str) -> str:
    found = re.search(rf'<figure class="chart-figure" id="{chart_id}">(.*?)</figure>', html,
                      re.S)
    assert found is not None, f"no {chart_id} on the page"
    return found.group(1)


def _bars(figure: str) -> dict[str, int]:
    return {unescape(label): int(value) for label, value in re.findall(
        r'<rect class="bar"[^>]* data-label="([^"]*)" data-value="(\d+)"', figure)}


def _table(figure: str) -> dict[str, int]:
    table = re.search(r"<details class=\"chart-data\">(.*?)</details>", figure, re.S)
    assert table is not None
    return {unescape(label): int(value) for label, value in re.findall(
        r'<th scope="row">([^<]*)</th><td>(\d+)</td>', table.group(1))}


@pytest.fixture(scope="module")
def scene(inprocess_server: InProcessServer) -> dict[str, Any]:
    """A product with three activations (two app versions), validations, a refusal,
    and a license expiring in ten days."""
    server = inprocess_server
    state = server.app.state.sdna
    product = "dash-" + secrets.token_hex(3)
    with db(server) as session:
        service.create_product(session, product_id=product, name="Dash <Board>")
        service.generate_key(session, state.ctx, product)
        issued = [service.issue_license(session, state.ctx, product_id=product)
                  for _ in range(3)]
        soon, _ = service.issue_license(
            session, state.ctx, product_id=product,
            expires_at=datetime.now(timezone.utc) + timedelta(days=10))
    api = Api.for_server(server)
    made = []
    for i, ((_, key), version) in enumerate(zip(issued, ["1.0", "1.0", "<b>2.0</b>"],
                                                strict=True)):
        answer = api.activate(product, key, machine=f"d{i}", client={
            "sdk_version": "0.9.0", "os": "Linux", "app_version": version})
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    secret = made[0]["activation_secret"]
    for _ in range(4):
        answer = api.validate(made[0]["activation_id"], secret, machine="d0")
        assert answer.status_code == 200
        secret = answer.json()["activation_secret"]
    # Revoked: the next validation is refused, counted under its code and the product.
    with db(server) as session:
        service.revoke_license(session, issued[1][0].id)
    refused = api.validate(made[1]["activation_id"], made[1]["activation_secret"],
                           machine="d1")
    assert refused.status_code == 403
    api.close()
    return {"product": product, "soon": soon.id}


def test_figures_and_charts_with_data(inprocess_server: InProcessServer, owner: PanelUser,
                                      scene: dict[str, Any]) -> None:
    page = owner.get(f"/panel/?product={scene['product']}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'id="fig-active">3<', html)  # a revoked license's activation is live
    assert re.search(r'id="fig-status-revoked">1<', html)
    assert re.search(r'id="fig-licenses">4<', html)
    assert re.search(r'id="fig-expiring">1<', html)
    assert f'href="/panel/licenses/{scene["soon"]}"' in html

    # Five charts, each an SVG image with its title and description wired up.
    assert html.count('<svg class="chart" role="img"') == 5
    for chart_id in ("chart-activations", "chart-validations", "chart-outcomes",
                     "chart-app-versions", "chart-sdk-versions"):
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in html
        assert f'<title id="{chart_id}-title">' in html and f'<desc id="{chart_id}-desc">' in html

    today = datetime.now(timezone.utc).date().isoformat()
    activations = _figure(html, "chart-activations")
    bars = _bars(activations)
    assert len(bars) == 30 and bars[today] == 3 and sum(bars.values()) == 3
    assert _table(activations)[today] == 3  # the fallback table says the same
    validations = _bars(_figure(html, "chart-validations"))
    assert validations[today] == 5
    assert _bars(_figure(html, "chart-outcomes")) == {"ok": 4, "license_revoked": 1}

    versions = _figure(html, "chart-app-versions")
    assert _bars(versions) == {"1.0": 2, "<b>2.0</b>": 1}
    assert _table(versions) == {"1.0": 2, "<b>2.0</b>": 1}
    assert "<b>2.0</b>" not in html and "&lt;b&gt;2.0&lt;/b&gt;" in html  # escaped
    assert _bars(_figure(html, "chart-sdk-versions")) == {"0.9.0": 3}
    # No inline style (the CSP forbids it) and no external address.
    assert "style=" not in html and "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_product_filter_and_unknown_product(owner: PanelUser, scene: dict[str, Any]) -> None:
    everything = owner.get("/panel/").text
    assert "Dash &lt;Board&gt;" in everything  # in the product select, escaped
    # An unknown product id is ignored (all products), never echoed into the page.
    odd = owner.get("/panel/?product=%3Cscript%3Ex").text
    assert "<script>x" not in odd and "&lt;script&gt;x" not in odd


def test_every_role_reads_it(inprocess_server: InProcessServer,
                             staff_emails: dict[Role, str], scene: dict[str, Any]) -> None:
    for role in Role:
        with PanelUser(inprocess_server, staff_emails[role]) as user:
            assert user.sign_in().status_code == 303
            page = user.get(f"/panel/?product={scene['product']}")
            assert page.status_code == 200, role
            assert page.text.count('<svg class="chart"') == 5


def test_charts_are_pure_and_escape() -> None:
    markup = str(charts.bar_chart("x<y", "A & B", "Desc <d>", [("<a>", 2), ("b", 0)]))
    assert '<figure class="chart-figure" id="x-y">' in markup
    assert "A &amp; B" in markup and "Desc &lt;d&gt;" in markup and "&lt;a&gt;" in markup
    assert 'data-value="2"' in markup and 'data-value="0"' in markup
    empty = str(charts.hbar_chart("e", "Empty", "Nothing.", []))
    assert "No data yet." in empty and "<tbody></tbody>" in empty
