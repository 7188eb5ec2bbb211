# Exhaust's container image: one image for every role, the role as the argument.
#
#   docker build -t exhaust .
#   docker run --rm -e EXHAUST_KAFKA_BOOTSTRAP=... exhaust processor   # or generator, api, all
#
# Two stages: the first builds a virtual environment from the wheels on PyPI (every dependency
# ships manylinux wheels, so no compiler is needed even there); the second copies that
# environment onto the same slim base and runs as an unprivileged user. Linted with hadolint in
# `make test`; the development machines have no Docker engine, so the image itself is built in CI
# or by the operator (docs/operations.md).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/exhaust
COPY pyproject.toml README.md ./
COPY app ./app
# The Avro schemas (the public contract, top-level in the repository) ship inside the package.
COPY schemas ./app/schemas
RUN /opt/exhaust/bin/pip install --no-cache-dir . \
    && /opt/exhaust/bin/python -c "import app.stream.avro as a; a.registry()"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="exhaust" \
      org.opencontainers.image.description="Dataset requests on Kafka turned into datasets in object storage" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 exhaust \
    && useradd --system --uid 10001 --gid exhaust --home-dir /var/lib/exhaust --create-home exhaust
COPY --from=build /opt/exhaust /opt/exhaust
ENV PATH=/opt/exhaust/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXHAUST_STATE_DIR=/var/lib/exhaust/state \
    EXHAUST_SPOOL_DIR=/var/lib/exhaust/spool \
    EXHAUST_HTTP_HOST=0.0.0.0 \
    EXHAUST_HTTP_PORT=8080
USER 10001:10001
WORKDIR /var/lib/exhaust
EXPOSE 8080
# Liveness only (the HTTP server answers); readiness is /readyz, probed by the orchestrator.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["exhaust", "worker", "--role"]
CMD ["all"]
