"""A region loss, simulated: what end users lose when a region of the license server goes.

A discrete-event model (no network, no server): ``N`` installed apps, each with a
periodic check, and new activations arriving at random, across regions served
as docs/operations.md ("Beyond one site") plans it: one primary region holding
the PostgreSQL primary (every write), streaming replicas in the other regions.
At time 0 one region is lost. Each scenario says which requests still succeed:

- ``replica region lost``: its users' requests fail until GeoDNS / the health
  checks send them to another region (``--reroute`` minutes); nothing else changes;
- ``primary lost, as built``: every public request writes (a validation rotates
  the activation's secret and stamps ``last_seen_at``; a lease renewal, an
  activation and a trial write), so nothing but ``/v1/health`` succeeds until the
  region returns (``T`` hours) -- or, with ``promoted``, until a replica is
  promoted (``--rto`` minutes);
- ``primary lost, replica validations``: the change the plan proposes -- a
  replica answers a node-locked validation without writing (the next secret
  generation is derived, not stored; ``last_seen_at`` deferred); leases,
  activations and trials still need the primary.

What each app does comes from the code, not from copied numbers: its token's
``refresh_by`` / ``exp`` from the server's own :func:`token_times` with a new
product's defaults (``DEFAULT_REFRESH_INTERVAL``, ``DEFAULT_OFFLINE_GRACE``,
``lease_duration``), the periodic check's jitter and back-off (interval x 2^failures,
at most ``max_backoff``, never past the token's end, one interval at most once it
ended) from :class:`PeriodicCheck`, the floating lease's
heartbeat (half the remaining lease) as :meth:`Checkout.heartbeat_delay` does it.
The SDK has no default check interval: the apps use the ones the docs show
(``--interval``: 3600 s, docs/quickstart.md; ``--floating-interval``: 300 s,
docs/seats.md). An app is modelled running throughout, checking only through its
periodic check (an app restart, whose ``check()`` tries the server once
``refresh_by`` passed, would recover sooner).

Figures per scenario and outage length: end users who were without a license at
some time (and the most at once), user-hours without one, activations refused
(new installs and trials), floating leases lost, and how long after service
returned the last app got its license back (the periodic check's back-off).

Usage: python bench/region_loss.py [--clients N] [--hours 1,6,24,72] [--seed S] ...
Not a test: a model, nothing fails.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import inspect
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

from software_dna.client.periodic import PeriodicCheck
from software_dna.license import License
from software_dna.server.domain.tokens import token_times
from software_dna.server.services.products import (
    DEFAULT_OFFLINE_GRACE,
    DEFAULT_REFRESH_INTERVAL,
    create_product,
)
from software_dna.wire.claims import Protection

HOUR = 3600.0
#: A new product's floating lease, in seconds (create_product's default).
LEASE_DURATION = float(inspect.signature(create_product).parameters["lease_duration"].default)
_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class _NoClient:
    """Stands in for the LicenseClient: only the checker's timing settings are read."""

    def check(self) -> License:
        raise NotImplementedError

    def refresh(self) -> License:
        raise NotImplementedError


@functools.lru_cache(maxsize=8)
def checker_timing(interval: float) -> tuple[float, float]:
    """``(jitter, max_backoff)`` of the SDK's :class:`PeriodicCheck` at ``interval`` seconds."""
    checker = PeriodicCheck(_NoClient(), interval)  # never started
    return checker.jitter, checker.max_backoff


def token_exp(protection: Protection, issued: float) -> float:
    """The ``exp`` (seconds on the model's clock) of a token issued at ``issued``."""
    now = _EPOCH + timedelta(seconds=issued)
    _, expires = token_times(protection=protection.value, refresh_interval=DEFAULT_REFRESH_INTERVAL,
                             offline_grace_period=DEFAULT_OFFLINE_GRACE,
                             license_expires_at=None, now=now)
    assert expires is not None
    return (expires - _EPOCH).total_seconds()


@dataclass(frozen=True)
class Scenario:
    """Which requests succeed while a region is lost (times in seconds from the loss)."""

    name: str
    primary_lost: bool
    replica_validations: bool
    promoted: bool


@dataclass(frozen=True)
class Params:
    """The model's inputs (see ``--help``)."""

    clients: int
    shares: tuple[float, ...]  # users per region; region 0 holds the primary
    mandatory: float
    floating: float
    activations_per_hour: float
    interval: float
    floating_interval: float
    reroute: float  # seconds until a lost region's users reach another region
    rto: float  # seconds until a replica is promoted (scenarios with ``promoted``)
    seed: int


@dataclass
class App:
    """One installed app: its token, its lease, its periodic check."""

    region: int
    protection: Protection
    floating: bool
    exp: float
    lease_end: float = float("inf")
    failures: int = 0
    lost_at: float | None = None  # when it last became unlicensed
    unlicensed_seconds: float = 0.0
    ever_lost: bool = False
    lease_lost: bool = False

    def licensed(self, now: float) -> bool:
        return now < min(self.exp, self.lease_end)


@dataclass
class Outcome:
    """The figures of one run."""

    users_without: int = 0
    peak_without: int = 0
    user_hours: float = 0.0
    activations_refused: int = 0
    activations_tried: int = 0
    leases_lost: int = 0
    last_recovery: float = 0.0  # seconds after service returned (0: nobody to recover)


class Model:
    """The discrete-event run of one scenario for an outage of ``hours``."""

    def __init__(self, params: Params, scenario: Scenario, hours: float) -> None:
        self.p = params
        self.s = scenario
        self.outage = hours * HOUR
        # Writes (and, as built, every public request) are back at ``restored``.
        self.restored = min(self.outage, params.rto) if scenario.promoted else self.outage
        self.lost_region = 0 if scenario.primary_lost else len(params.shares) - 1
        self.rng = random.Random(params.seed)
        self.events: list[tuple[float, int, int, bool]] = []  # (when, seq, app, is a check)
        self.seq = 0
        self.apps: list[App] = []
        self.without = 0
        self.outcome = Outcome()

    # -- what the server answers

    def reachable(self, app: App, now: float) -> bool:
        """Whether ``app``'s region (or the one it is sent to) answers at ``now``."""
        return not (app.region == self.lost_region and 0 <= now < min(self.p.reroute,
                                                                      self.outage))

    def writes(self, now: float) -> bool:
        """Whether a write (activation, trial, lease, as-built validation) succeeds."""
        return not (self.s.primary_lost and 0 <= now < self.restored)

    def validation_ok(self, app: App, now: float) -> bool:
        if not self.reachable(app, now):
            return False
        if self.writes(now):
            return True
        return self.s.replica_validations and not app.floating

    # -- the run

    def schedule(self, when: float, index: int) -> None:
        """The app's next check at ``when``, and the moment its license lapses if sooner."""
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, index, True))
        app = self.apps[index]
        lapse = min(app.exp, app.lease_end)
        if app.lost_at is None and lapse < when:
            self.seq += 1
            heapq.heappush(self.events, (lapse, self.seq, index, False))

    def populate(self) -> None:
        p = self.p
        cumulative = [sum(p.shares[: i + 1]) for i in range(len(p.shares))]
        for index in range(p.clients):
            region = self._region(cumulative)
            draw = self.rng.random()
            floating = draw < p.floating
            protection = (Protection.MANDATORY if p.floating <= draw < p.floating + p.mandatory
                          else Protection.OPPORTUNISTIC)
            interval = p.floating_interval if floating else p.interval
            last = -self.rng.uniform(0, interval)  # the last successful check, before the loss
            app = App(region, protection, floating, token_exp(protection, last))
            if floating:
                app.lease_end = last + LEASE_DURATION
            self.apps.append(app)
            self.schedule(self._next(app, last, interval), index)

    def _region(self, cumulative: Sequence[float]) -> int:
        draw = self.rng.random() * cumulative[-1]
        return next(i for i, c in enumerate(cumulative) if draw <= c)

    def _next(self, app: App, now: float, interval: float) -> float:
        """When the periodic check runs next (the SDK's back-off, jitter, heartbeat)."""
        jitter, max_backoff = checker_timing(interval)
        base = min(interval * 2.0 ** app.failures, max_backoff)
        if not app.licensed(now):  # the SDK backs off one interval at most once lapsed
            base = min(base, interval)
        spread = base * jitter
        delay = max(0.01, base + self.rng.uniform(-spread, spread))
        if app.licensed(now):  # the SDK never sleeps past the end of the license it holds
            delay = min(delay, max(min(interval, 60.0), app.exp - now))
        if app.floating:
            left = app.lease_end - now
            if left > 0:
                delay = max(1.0, min(delay, left / 2))
        return now + delay

    def _account(self, app: App, now: float) -> None:
        """Note a change of ``app``'s licensed state up to ``now``."""
        licensed = app.licensed(now)
        if app.lost_at is None and not licensed:
            app.lost_at = max(0.0, min(app.exp, app.lease_end))
            app.ever_lost = True
            self.without += 1
            self.outcome.peak_without = max(self.outcome.peak_without, self.without)
            if app.floating and app.lease_end <= now:
                app.lease_lost = True
        elif app.lost_at is not None and licensed:
            app.unlicensed_seconds += now - app.lost_at
            app.lost_at = None
            self.without -= 1
            back = self.restored if self.s.primary_lost else min(self.p.reroute, self.outage)
            self.outcome.last_recovery = max(self.outcome.last_recovery, now - back)

    def run(self) -> Outcome:
        self.populate()
        horizon = self.outage + 2 * checker_timing(self.p.interval)[1]  # the back-off's tail
        self._activations(horizon)
        while self.events:
            now, _, index, check = heapq.heappop(self.events)
            if now > horizon:
                break
            app = self.apps[index]
            interval = self.p.floating_interval if app.floating else self.p.interval
            if not app.licensed(now) and app.lost_at is None:
                self._account(app, now)  # it lapsed while waiting for this check
            if not check:
                continue
            if self.validation_ok(app, now):
                app.exp = token_exp(app.protection, now)
                if app.floating:
                    app.lease_end = now + LEASE_DURATION
                    app.exp = min(app.exp, app.lease_end)
                app.failures = 0
                self._account(app, now)
                if now > max(self.restored, self.p.reroute) and app.lost_at is None:
                    continue  # service is back for good: nothing more happens to it
            else:
                app.failures += 1
            self.schedule(self._next(app, now, interval), index)
        for app in self.apps:
            if app.lost_at is not None:
                app.unlicensed_seconds += horizon - app.lost_at
        self.outcome.users_without = sum(app.ever_lost for app in self.apps)
        self.outcome.user_hours = sum(app.unlicensed_seconds for app in self.apps) / HOUR
        self.outcome.leases_lost = sum(app.lease_lost for app in self.apps)
        return self.outcome

    def _activations(self, horizon: float) -> None:
        """New installs (activations, trials) arriving at random; refused without writes."""
        rate = self.p.activations_per_hour / HOUR
        if rate <= 0:
            return
        now = self.rng.expovariate(rate)
        region_shares = [sum(self.p.shares[: i + 1]) for i in range(len(self.p.shares))]
        while now < horizon:
            if now < self.outage:
                self.outcome.activations_tried += 1
                region = self._region(region_shares)
                reached = not (region == self.lost_region and now < self.p.reroute)
                if not (reached and self.writes(now)):
                    self.outcome.activations_refused += 1
            now += self.rng.expovariate(rate)


SCENARIOS = (
    Scenario("replica region lost", primary_lost=False, replica_validations=False,
             promoted=False),
    Scenario("primary lost, as built", primary_lost=True, replica_validations=False,
             promoted=False),
    Scenario("primary lost, as built, promoted", primary_lost=True, replica_validations=False,
             promoted=True),
    Scenario("primary lost, replica validations", primary_lost=True, replica_validations=True,
             promoted=False),
    Scenario("primary lost, replica validations, promoted", primary_lost=True,
             replica_validations=True, promoted=True),
)


def _hours(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _shares(text: str) -> tuple[float, ...]:
    shares = tuple(float(part) for part in text.split(","))
    if len(shares) < 2 or any(s <= 0 for s in shares):
        raise argparse.ArgumentTypeError("at least two positive shares, the primary's first")
    return shares


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario for every outage length; print the table. Returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000, help="installed apps (10000)")
    parser.add_argument("--hours", type=_hours, default=[1, 6, 24, 72],
                        help="outage lengths in hours (1,6,24,72)")
    parser.add_argument("--shares", type=_shares, default=(0.5, 0.3, 0.2),
                        help="users per region, the primary's first (0.5,0.3,0.2)")
    parser.add_argument("--mandatory", type=float, default=0.1,
                        help="share of apps whose product is 'mandatory' (0.1)")
    parser.add_argument("--floating", type=float, default=0.1,
                        help="share of apps on floating licenses (0.1)")
    parser.add_argument("--activations-per-hour", type=float, default=None,
                        help="new installs per hour (default: 0.1%% of the clients)")
    parser.add_argument("--interval", type=float, default=3600.0,
                        help="periodic check interval, seconds (3600, docs/quickstart.md)")
    parser.add_argument("--floating-interval", type=float, default=300.0,
                        help="floating apps' check interval, seconds (300, docs/seats.md)")
    parser.add_argument("--reroute", type=float, default=5.0,
                        help="minutes until a lost region's users reach another one (5)")
    parser.add_argument("--rto", type=float, default=30.0,
                        help="minutes until a replica is promoted, 'promoted' rows (30)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    params = Params(
        clients=args.clients, shares=args.shares, mandatory=args.mandatory,
        floating=args.floating,
        activations_per_hour=(args.activations_per_hour if args.activations_per_hour is not None
                              else args.clients / 1000),
        interval=args.interval, floating_interval=args.floating_interval,
        reroute=args.reroute * 60, rto=args.rto * 60, seed=args.seed)
    print(f"Region loss, simulated: {params.clients} apps "
          f"({1 - params.mandatory - params.floating:.0%} opportunistic, "
          f"{params.mandatory:.0%} mandatory, {params.floating:.0%} floating), regions "
          f"{'/'.join(f'{s:g}' for s in params.shares)} (primary first), "
          f"{params.activations_per_hour:g} new installs/h")
    print(f"Defaults from the code: refresh interval {DEFAULT_REFRESH_INTERVAL / HOUR:g} h, "
          f"offline grace {DEFAULT_OFFLINE_GRACE / 86400:g} days, lease "
          f"{LEASE_DURATION / 60:g} min, check jitter {checker_timing(params.interval)[0]:.0%}, "
          f"back-off up to {checker_timing(params.interval)[1] / HOUR:g} h "
          f"(interval {params.interval:g} s); reroute {args.reroute:g} min, "
          f"promotion (RTO) {args.rto:g} min")
    rows = []
    for scenario in SCENARIOS:
        # A replica region's loss lasts as long as the rerouting: one row says it.
        for hours in args.hours if scenario.primary_lost else args.hours[-1:]:
            if scenario.promoted and hours * 60 <= args.rto:
                continue  # the region is back before the promotion: the row above
            outcome = Model(params, scenario, hours).run()
            rows.append([
                scenario.name, f"{hours:g}" if scenario.primary_lost else "any",
                f"{outcome.users_without} ({outcome.users_without / params.clients:.1%})",
                str(outcome.peak_without), f"{outcome.user_hours:,.0f}",
                f"{outcome.activations_refused}/{outcome.activations_tried}",
                str(outcome.leases_lost), f"{outcome.last_recovery / HOUR:.1f}",
            ])
    print(table(["scenario", "T (h)", "users without", "peak", "user-hours",
                 "activations refused", "leases lost", "last back (h)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
