"""Side effects: each module's plain functions do one unit of work in one transaction;
the `@task` wrappers are what flows call."""
