"""What one activation costs the database: statements and commits, counted, not timed.

An activation of a new machine is on the path every install takes; these counts
keep it from growing back (a read of every activation of the license, a commit
per rate-limit counter, a second read of the license).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.server.helpers import Api

from ..inprocess import InProcessServer

#: Statements of one activation of a new machine (license without password, PostgreSQL
#: and SQLite alike: the advisory lock of PostgreSQL is SQLite's BEGIN IMMEDIATE).
MOST_STATEMENTS = 15


@contextmanager
def counted() -> Iterator[dict[str, int]]:
    """Statements and commits of every engine of this process while the block runs."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)


def test_an_activation_is_a_bounded_number_of_statements_and_one_commit(
        tmp_path: Path, fresh_database_url: str) -> None:
    with InProcessServer(tmp_path, database_url=fresh_database_url,
                         rate_limit_attempts=1000) as srv:
        pid = "cost-" + secrets.token_hex(3)
        srv.admin.setup_product(pid)
        key = srv.admin.issue_license(pid, seats=1000)["license_key"]
        api = Api.for_server(srv)
        try:
            seen = []
            for n in range(40):
                with counted() as counts:
                    assert api.activate(pid, key, machine=f"m-{n}").status_code == 201
                seen.append(counts)
            # After the first few (caches warm), every activation costs the same however
            # many the license already holds, but for the housekeeping done one time in
            # 50 each (the lock-out ledger's pruning, the counters' sweep).
            steady = [c["statements"] for c in seen[5:]]
            assert max(set(steady), key=steady.count) <= MOST_STATEMENTS, steady
            assert max(steady) <= MOST_STATEMENTS + 2, steady
            assert all(c["commits"] == 1 for c in seen), seen
        finally:
            api.close()
