"""Helpers shared by the test packages (fixtures live in the conftest files)."""
