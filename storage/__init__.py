"""The system of record: SQLModel tables, sessions and migrations.

Repository functions take a session and keyword-only arguments and never commit:
the caller owns the transaction, so a state change, its outbox rows and its audit
event commit together.
"""
