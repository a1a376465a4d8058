"""The Celery app that ``celery -A celery_app worker`` loads."""

from celery_app.app import app, configure

__all__ = ["app", "configure"]
