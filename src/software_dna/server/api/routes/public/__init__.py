"""End-user routes under ``/v1``, one module per noun (docs/protocol.md, "End-user routes")."""
