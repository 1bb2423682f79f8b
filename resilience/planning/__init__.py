"""Sizing a shelter's chargers, outlets and PV (`resilience plan`, docs/planning.md)."""
