# One image for workers, the CLI and the sandbox.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY celery_app celery_app
COPY tasks tasks
COPY managers managers
COPY extractors extractors
COPY imaging imaging
COPY homeshots homeshots
COPY examples examples
RUN pip install --no-cache-dir . && useradd --create-home homeshots
USER homeshots
CMD ["celery", "-A", "celery_app", "worker", "--loglevel=INFO", "-E"]
