"""Tests of the deployment recipes in deploy/: proxy, systemd, containers, HA."""
