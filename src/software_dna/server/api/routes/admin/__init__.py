"""Vendor routes under ``/v1/admin``, one module per noun; each needs the admin API key."""
