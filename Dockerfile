# The worker's container image: `streams worker`, with the embedding model's package, as a non-root user.
# No Docker engine is available to the project's CI, so the image is not built there: hadolint checks
# this file (docs/production.md, "The worker's image").
#
#   docker build -t streams-worker .
#   docker build --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu -t streams-worker .
#     (the second takes PyTorch's CPU-only build: the same version, without the CUDA libraries)
FROM python:3.11-slim

# pip reads PIP_EXTRA_INDEX_URL itself; empty, only PyPI is used.
ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheels bring their native libraries (librdkafka in confluent-kafka, libpq in psycopg[binary],
# ONNX Runtime): no Debian package is needed. The constraints pin every transitive version.
WORKDIR /src
COPY pyproject.toml setup.py constraints.txt README.md ./
COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf /src

RUN groupadd --system --gid 10001 streams \
    && useradd --system --create-home --home-dir /var/lib/streams --uid 10001 --gid 10001 streams
# Numeric, so that a runtime that refuses root (runAsNonRoot) can tell it is not.
USER 10001:10001
# faust keeps its data folder in the working directory; the ONNX exports of the model go to the cache.
WORKDIR /var/lib/streams
# In a container the worker must listen beyond loopback to be reached at all. /metrics, /freshness and
# the console's figures are unauthenticated: publish the port only where they may be read. No local
# stack runs here, so no application is configured by it: the sources are those STREAMS_SOURCE_DSNS names.
ENV STREAMS_STACK_HOME=/var/lib/streams/stack \
    STREAMS_CACHE_DIR=/var/lib/streams/cache \
    STREAMS_WORKER_WEB_BIND=0.0.0.0 \
    STREAMS_STACK_APPS=none
EXPOSE 16066
ENTRYPOINT ["streams", "worker"]
