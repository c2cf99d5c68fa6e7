"""Tests of the adapters in purposeguard.integrations."""
