"""homeshots: collect, deduplicate, standardize and store real-estate photos on a Celery cluster."""

__version__ = "0.1.0"
