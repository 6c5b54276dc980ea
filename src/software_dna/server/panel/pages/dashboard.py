"""The dashboard: what is happening, at a glance (figures and charts the server draws)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, func, select
from typing_extensions import Unpack

from software_dna.server.api.deps import Db
from software_dna.server.domain.roles import Permission
from software_dna.server.models import Activation, License, Product
from software_dna.server.panel import charts
from software_dna.server.panel.web import PanelRoute, Staff, render, viewer
from software_dna.server.services import usage
from software_dna.server.services.common import utcnow

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

_S = TypeVar("_S", bound=Select[Unpack[tuple[Any, ...]]])

#: The days the charts cover (today included).
DAYS = 30
#: How many versions the spreads show (the rest are summed as "other").
TOP_VERSIONS = 10
#: How many licenses expiring soon are listed.
EXPIRING_SHOWN = 20


def _spread(rows: list[tuple[str | None, int]], unknown: str) -> list[tuple[str, int]]:
    """Version counts, largest first, the long tail summed as "other"."""
    counts = Counter({(name or unknown): n for name, n in rows})
    top = counts.most_common(TOP_VERSIONS)
    rest = sum(counts.values()) - sum(n for _, n in top)
    return top + ([("other", rest)] if rest else [])


@router.get("/")
def dashboard(request: Request, session: Db,
              staff: Annotated[Staff, Depends(viewer(Permission.READ))],
              product: str = "") -> Response:
    """Figures, charts of the last 30 days, and the licenses expiring soon.

    ``product``: only this product's numbers (empty: all).
    """
    # This worker's counts so far, so the page is current (the others flush every ~10 s).
    counter: usage.UsageCounter | None = getattr(request.app.state, "usage", None)
    if counter is not None:
        usage.flush(session, counter)
    products = list(session.execute(select(Product.id, Product.name).order_by(Product.id)))
    chosen = product if any(p.id == product for p in products) else ""
    now = utcnow()

    def for_product(query: _S) -> _S:
        return query.where(License.product_id == chosen) if chosen else query

    live = for_product(select(func.count()).select_from(Activation)
                       .join(License, License.id == Activation.license_id)
                       .where(Activation.deactivated_at.is_(None)))
    active = session.scalar(live) or 0
    by_status = dict(session.execute(for_product(
        select(License.status, func.count()).group_by(License.status).order_by(License.status))
    ).all())
    expiring = list(session.scalars(for_product(
        select(License).where(License.expires_at.is_not(None), License.expires_at > now,
                              License.expires_at <= now + timedelta(days=DAYS),
                              License.status == "active")
        .order_by(License.expires_at).limit(EXPIRING_SHOWN))))
    expiring_total = session.scalar(for_product(
        select(func.count()).select_from(License)
        .where(License.expires_at.is_not(None), License.expires_at > now,
               License.expires_at <= now + timedelta(days=DAYS), License.status == "active")
    )) or 0

    today = now.date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    rows = usage.daily_counts(session, days=DAYS, product_id=chosen or None, today=today)
    per_day: dict[str, Counter[date]] = {}
    outcomes: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for row in rows:
        if row.event == usage.VALIDATION:
            per_day.setdefault(usage.VALIDATION, Counter())[row.day] += row.count
            outcomes[row.outcome] += row.count
        elif row.event == usage.ACTIVATION and row.outcome == usage.OK:
            per_day.setdefault(usage.ACTIVATION, Counter())[row.day] += row.count
        totals[row.event] += row.count if row.outcome == usage.OK else 0

    def series(event: str) -> list[tuple[str, int]]:
        counts = per_day.get(event, Counter())
        return [(d.isoformat(), counts[d]) for d in days]

    versions = for_product(select(Activation.app_version, func.count())
                           .join(License, License.id == Activation.license_id)
                           .where(Activation.deactivated_at.is_(None))
                           .group_by(Activation.app_version))
    sdks = for_product(select(Activation.sdk_version, func.count())
                       .join(License, License.id == Activation.license_id)
                       .where(Activation.deactivated_at.is_(None))
                       .group_by(Activation.sdk_version))
    span = f"{days[0].isoformat()} to {days[-1].isoformat()} (UTC)"
    figures = [
        charts.bar_chart("chart-activations", "Activations per day",
                         f"New activations each day from {span}.",
                         series(usage.ACTIVATION)),
        charts.bar_chart("chart-validations", "Validations per day",
                         f"Validations (answered or refused) each day from {span}.",
                         series(usage.VALIDATION)),
        charts.hbar_chart("chart-outcomes", "Validation outcomes",
                          f"How the validations from {span} ended: ok or the refusal's code.",
                          outcomes.most_common(), label_header="Outcome"),
        charts.hbar_chart("chart-app-versions", "App versions in use",
                          "Live activations by the app version the SDK reported.",
                          _spread([(v, n) for v, n in session.execute(versions)], "not reported"),
                          label_header="App version"),
        charts.hbar_chart("chart-sdk-versions", "SDK versions in use",
                          "Live activations by the SDK version they run.",
                          _spread([(v, n) for v, n in session.execute(sdks)], "unknown"),
                          label_header="SDK version"),
    ]
    options = [("", "All products")] + [(p.id, f"{p.name} ({p.id})") for p in products]
    response = render(request, "dashboard.html", staff, product_options=options,
                      product=chosen, active=active, by_status=by_status,
                      licenses=sum(by_status.values()),
                      trials_started=totals[usage.TRIAL_STARTED],
                      trials_converted=totals[usage.TRIAL_CONVERTED],
                      expiring=expiring, expiring_total=expiring_total, days=DAYS,
                      charts=figures)
    session.rollback()  # rendered: end the read transaction (SQLite: release the lock)
    return response
