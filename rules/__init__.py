"""Pure domain rules: no Prefect, no database, `now` always a parameter.

Deadline arithmetic, the working-day calendar, plan and authority schemas and
trigger validation, tested in milliseconds.
"""
