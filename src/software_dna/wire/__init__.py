"""The wire layer: what the SDK and the server agree on, with no I/O and no state.

Everything here is pure and shared by both halves: the error and refusal codes
(:mod:`.codes`), RFC 3339 times (:mod:`.times`), strict JSON
(:mod:`.strict_json`), PASETO and PASERK (:mod:`.paseto`), the token and
receipt claims (:mod:`.claims`) and the air-gapped text blocks
(:mod:`.airgap`). Its failures are its own small exceptions (:mod:`.errors`).
Nothing in this package imports from the rest of ``software_dna``.
"""
