"""The reliability and security suite: one module per family of attacks or faults.

Every module holds pytest tests named after the attack, plus a ``family(scale)``
function that runs the whole family and counts the cases (``Tally``): a short
run is one of the module's tests (``make test``), a long one is what
``make stress`` (``python -m tests.stress``) runs and reports, one line per family.
See docs/security.md, "Test evidence".
"""
