"""Lifecycles as Prefect flows: they orchestrate, and hold no SQL and no message text."""
