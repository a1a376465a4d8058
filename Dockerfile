# Two images from one file: `sandbox` (the imitated sources, for the compose profile of that name) and the
# runtime (the default, last stage) for workers, the CLI, Flower and the exporter: no sandbox, no examples.
FROM python:3.11-slim AS base
WORKDIR /app
COPY pyproject.toml README.md ./
COPY celery_app celery_app
COPY tasks tasks
COPY managers managers
COPY homeshots homeshots

FROM base AS sandbox
COPY sandbox sandbox
RUN pip install --no-cache-dir . ./sandbox && useradd --create-home homeshots
USER homeshots
CMD ["homeshots-sandbox", "serve", "--host", "0.0.0.0", "--port", "8765"]

FROM base AS runtime
RUN pip install --no-cache-dir . && useradd --create-home homeshots
USER homeshots
CMD ["celery", "-A", "celery_app", "worker", "--loglevel=INFO", "-E"]
