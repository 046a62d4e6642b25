"""The lutnas REST service: FastAPI app, SQLAlchemy models, Alembic migrations, auth, job worker."""
