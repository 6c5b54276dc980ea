"""The pure "same machine?" rules (software_dna.wire.identity)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from software_dna.wire.identity import (
    IDENTIFYING,
    MAX_MACS,
    REQUIRED,
    InvalidFingerprint,
    compare,
    compare_legacy,
    conflicts,
    index_terms,
    parse_components,
    to_json,
    tolerance_problem,
)
from software_dna.wire.identity import ComponentSet as Set
from tests.identity_cases import CASES, Case, drift, h, machine


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case_table(case: Case) -> None:
    assert compare(case.a, case.b, case.tolerance).same is case.same
    assert compare(case.b, case.a, case.tolerance).same is case.same


_labels = st.sampled_from(["p", "q", "r", "s"])
_value = st.one_of(st.none(), _labels.map(h))
_macs = st.one_of(st.none(), st.lists(_labels.map(h), min_size=1, max_size=3)
                  .map(lambda hs: tuple(sorted(set(hs)))))
_sets = st.fixed_dictionaries(
    {"machine_id": _value, "os_arch": _value, "cpu": _value, "mac": _macs},
    optional={"smbios_uuid": _value},
)


@given(_sets, _sets, st.integers(0, 4))
def test_compare_is_symmetric(a: Set, b: Set, tolerance: int) -> None:
    assert compare(a, b, tolerance) == compare(b, a, tolerance)


@given(_sets, _sets, st.integers(0, 4))
def test_shared_components_never_carry_a_match(a: Set, b: Set, tolerance: int) -> None:
    result = compare(a, b, tolerance)
    if result.same:
        assert result.identifying_equal
        assert any(a.get(n) is not None and b.get(n) is not None for n in IDENTIFYING)
    assert len(result.differing) <= tolerance or not result.same


@given(_sets, st.integers(0, 4))
def test_a_set_without_unavailable_components_matches_itself(a: Set, tolerance: int) -> None:
    missing = sum(1 for n in a if a[n] is None)
    identifying = any(a.get(n) is not None for n in IDENTIFYING)
    assert compare(a, a, tolerance).same is (identifying and missing <= tolerance)


def test_parse_round_trip_sorts_and_deduplicates_macs() -> None:
    raw = to_json(machine("a", macs=("m2", "m1")))
    macs = sorted({h("m1"), h("m2")})
    raw["mac"] = [*macs, macs[0]]  # a duplicate
    parsed = parse_components(raw)
    assert parsed["mac"] == tuple(sorted({h("m1"), h("m2")}))
    assert to_json(parsed)["mac"] == sorted({h("m1"), h("m2")})


@pytest.mark.parametrize(("body", "why"), [
    ([], "must be an object"),
    ({**to_json(machine("a")), "hostname": h("x")}, "Unknown"),
    ({k: v for k, v in to_json(machine("a")).items() if k != "cpu"}, "lacks the 'cpu'"),
    ({**to_json(machine("a")), "cpu": "short"}, "43-character"),
    ({**to_json(machine("a")), "cpu": 7}, "43-character"),
    ({**to_json(machine("a")), "mac": []}, "list of 1"),
    ({**to_json(machine("a")), "mac": [h(str(i)) for i in range(MAX_MACS + 1)]}, "list of 1"),
    ({**to_json(machine("a")), "mac": "not-a-list"}, "list of 1"),
    ({**to_json(machine("a")), "machine_id": None, "mac": None}, "no identifying"),
])
def test_parse_refuses_malformed_sets(body: object, why: str) -> None:
    with pytest.raises(InvalidFingerprint, match=why):
        parse_components(body)


def test_every_required_name_may_be_null_but_not_all_identifying() -> None:
    parsed = parse_components({**to_json(machine("a")), "cpu": None, "os_arch": None})
    assert parsed["cpu"] is None
    assert set(REQUIRED) <= set(parsed)


def test_conflicts_tells_drift_from_two_machines() -> None:
    a = machine("a")
    assert not conflicts(a, drift(a, machine_id=None))  # a read that failed
    assert not conflicts(a, machine("a", macs=("mac-a", "dock")))  # shares an address
    assert conflicts(a, drift(a, mac=("mac-clone",)))  # a clone's new card
    assert conflicts(a, machine("b"))


def test_index_terms_cover_every_identifying_value() -> None:
    docked = machine("a", macs=("m1", "m2"), smbios="s")
    terms = index_terms(docked)
    assert ("machine_id", docked["machine_id"]) in terms
    assert ("smbios_uuid", h("s")) in terms
    assert {v for n, v in terms if n == "mac"} == {h("m1"), h("m2")}
    assert all(n in IDENTIFYING for n, _ in terms)


@pytest.mark.parametrize(("value", "ok"), [(0, True), (1, True), (2, False), (-1, False),
                                           (True, False), ("1", False)])
def test_tolerance_bounds(value: object, ok: bool) -> None:
    assert (tolerance_problem(value) is None) is ok


def test_legacy_compare_is_symmetric_and_anchored() -> None:
    stored = {"machine_id": h("m"), "os_arch": h("o"), "hostname": h("n")}
    assert compare_legacy(stored, stored, 0)
    assert compare_legacy(stored, {**stored, "hostname": h("n2")}, 1)
    # a subset no longer matches everything the token holds (0.1's hole)
    assert not compare_legacy(stored, {"os_arch": h("o")}, 1)
    assert not compare_legacy({"os_arch": h("o")}, {"os_arch": h("o")}, 3)


@pytest.mark.parametrize("bad", [-1, True, 1.0])
def test_compare_refuses_bad_tolerance(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        compare(machine("a"), machine("a"), bad)  # type: ignore[arg-type]
