"""Operator tooling behind the `opsconductor` command."""
