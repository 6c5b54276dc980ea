"""Pytest fixtures that run the reference license server over real HTTP."""
