"""Tests of the reference license server over real HTTP."""
