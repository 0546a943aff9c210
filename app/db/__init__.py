"""The job/metrics store: SQLAlchemy models, engine/session factory, and the queries the API and worker share."""
