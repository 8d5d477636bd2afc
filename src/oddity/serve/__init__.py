"""oddity's inspection service: a REST API, a browser UI and a durable inspection store.

    oddity serve bottle.oddity --port 8000

Modules: `adapter` (the only one that touches detectors), `uploads` (sniffing, limits,
decoding), `files` (content-addressed image and map files), `schema` and `store` (SQLAlchemy
tables and queries; Alembic migrations in `migrations/`), `review` (threshold proposals),
`limits` (settings, API key, body size, admission), `metrics` (Prometheus), `service` (what
the routes do), `app` (the FastAPI routes), `runner` (`oddity serve`), `ui/` (plain HTML/JS).
"""
