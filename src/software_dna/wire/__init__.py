"""The wire layer: what the SDK and the server agree on, with no I/O and no state.

Everything here is pure and shared by both halves: the error and refusal codes,
and (as they move here) RFC 3339 times, PASETO, the token claims and the
air-gapped text blocks. Nothing in this package imports from the rest of
``software_dna``.
"""
