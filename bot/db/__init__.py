"""The app database: models, engine and sessions, Alembic migrations, demo data.

``python -m bot.db upgrade [--demo] [--generate N]`` creates or upgrades the schema.
"""
