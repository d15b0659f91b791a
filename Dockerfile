# syntax=docker/dockerfile:1
# Tributary's image: one image for every role (`tributary serve --role ...`, `tributary migrate`).
#   docker build -t tributary .                                          # about 1 GB installed
#   docker build -t tributary --build-arg INSTALL_EXTRAS=embed-local .   # with the local embedding model (ONNX Runtime: +125 MB)
# Checked offline by tests/test_deploy_docker.py (no Docker engine runs in CI).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: compilers for hnswlib (published as source only), and a virtualenv holding Tributary and its
# dependencies. Only the virtualenv goes on to the runtime stage.
FROM ${PYTHON_IMAGE} AS builder
ARG INSTALL_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Unpinned: build-essential comes from the base image's Debian release, and a pinned version breaks the build at
# Debian's next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/tributary
ENV PATH=/opt/tributary/bin:$PATH
WORKDIR /src
# Dependencies first, from the project metadata alone, so a code change does not rebuild hnswlib.
COPY pyproject.toml README.md ./
RUN python -c 'import os, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [e for e in os.environ["INSTALL_EXTRAS"].split(",") if e]; \
print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' \
    > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY tributary/ tributary/
COPY entrypoints/ entrypoints/
COPY command_api/ command_api/
COPY query_api/ query_api/
COPY workers/ workers/
COPY events/ events/
COPY schemas/ schemas/
COPY migrations/ migrations/
RUN pip install --no-deps .

# Runtime: the interpreter, the virtualenv and nothing else; no compiler, runs as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 tributary \
    && useradd --system --uid 10001 --gid tributary --home-dir /var/lib/tributary --create-home tributary
COPY --from=builder /opt/tributary /opt/tributary
ENV PATH=/opt/tributary/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRIBUTARY_HOST=0.0.0.0 \
    TRIBUTARY_PORT=8080 \
    TRIBUTARY_DATA_DIR=/var/lib/tributary
WORKDIR /var/lib/tributary
USER 10001:10001
EXPOSE 8080 50051
# The HTTP roles answer /healthz; the worker roles (applier, projector) serve no HTTP, so their deployments turn
# this check off (deploy/compose, deploy/kubernetes).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRIBUTARY_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["tributary"]
# Embedded mode by default (one process, SQLite and DeepLake under /var/lib/tributary); the deployments name a role.
CMD ["serve"]
