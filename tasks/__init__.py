"""Celery task bodies, kept thin: the per-property task and the chord window callback."""
