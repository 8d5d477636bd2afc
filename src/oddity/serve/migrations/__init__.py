"""Alembic migrations of the inspection store (run by `oddity.serve.store.open_store`)."""
