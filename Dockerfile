# syntax=docker/dockerfile:1
# Two images from one file: `sandbox` (the imitated sources, for the compose profile of that name) and the
# runtime (the default, last stage) for workers, the CLI, Flower and the exporter: no sandbox, tests or examples.
# Layers, most stable first: pinned base, the dependencies (rebuilt only when pyproject.toml changes), the code.
# Both images run as the numeric user 10001 (Kubernetes' runAsNonRoot can check a number, not a name).

FROM python:3.11.13-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 homeshots \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin homeshots
WORKDIR /app

# The dependencies of pyproject.toml only: this layer stays cached while only the code changes.
FROM base AS deps
RUN --mount=type=bind,source=pyproject.toml,target=/tmp/pyproject.toml \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The homeshots wheel (celery_app, tasks, managers, homeshots), built from the code alone.
FROM base AS wheel
COPY pyproject.toml README.md ./
COPY celery_app celery_app
COPY tasks tasks
COPY managers managers
COPY homeshots homeshots
RUN pip wheel --no-deps --wheel-dir /wheels .

# The imitated sources only (they import nothing of homeshots): development and the compose `sandbox` profile.
FROM base AS sandbox
RUN --mount=type=bind,source=sandbox,target=/src/sandbox,rw \
    pip install /src/sandbox
USER 10001:10001
EXPOSE 8765
CMD ["homeshots-sandbox", "serve", "--host", "0.0.0.0", "--port", "8765"]

FROM deps AS runtime
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
USER 10001:10001
CMD ["celery", "-A", "celery_app", "worker", "--loglevel=INFO", "-E"]
