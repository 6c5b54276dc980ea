"""The routers, one module per noun: :mod:`.public` (the SDK's) and :mod:`.admin` (the vendor's)."""
