# The kailash-nb serving image: `kailash-nb serve` on a notebook's published workflows,
# configured by environment variables (docs/deployment.md). Two stages: the builder builds
# the wheel (its JupyterLab extension needs Node.js) and installs it into a virtualenv; the
# runtime image gets only that virtualenv and the notebooks, and runs as a non-root user.
# No secret is baked in: KAILASH_NB_JWT_SECRET and KAILASH_NB_DATABASE_URL come from the
# environment at run time (a Kubernetes Secret in k8s/production/).

# An exact release on Debian 13 (trixie, whose Node.js 20.19 can build the extension).
# Pin it by digest where the registry can be reached, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.12.12-slim-trixie@sha256:<digest> .
# with the digest from `docker buildx imagetools inspect python:3.12.12-slim-trixie`.
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install --yes --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps out what the wheel does not need (and any local secret file).
COPY . .
# The wheel build runs tools/build_labextension.py (npm ci, then the production build).
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
# The extras the server needs: PostgreSQL and Redis clients, IPython to run the cells,
# the MCP SDK for `serve --mcp`.
ARG KAILASH_NB_EXTRAS=postgres,redis,notebook,mcp
RUN python -m venv /opt/kailash-nb \
    && /opt/kailash-nb/bin/python -m pip install "$(ls /wheels/kailash_nb-*.whl)[${KAILASH_NB_EXTRAS}]"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 kailash \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/kailash --create-home \
        --shell /usr/sbin/nologin kailash
COPY --from=builder /opt/kailash-nb /opt/kailash-nb
# The notebooks served, owned by root (read-only to the server). Serve your own with
# --build-arg NOTEBOOKS=path/to/dir and KAILASH_NB_NOTEBOOK, or mount them at /app/notebooks.
ARG NOTEBOOKS=notebooks
COPY ${NOTEBOOKS} /app/notebooks
COPY deploy/healthcheck.py /app/healthcheck.py
# HOME and IPYTHONDIR are the only places written (the IPython shell's history); with a
# read-only root file system mount writable volumes there (k8s/production/deployment.yaml).
ENV PATH=/opt/kailash-nb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/kailash \
    IPYTHONDIR=/tmp/ipython \
    KAILASH_NB_NOTEBOOK=/app/notebooks/04-publish.ipynb \
    KAILASH_NB_HOST=0.0.0.0 \
    KAILASH_NB_PORT=8000 \
    KAILASH_NB_WORKERS=1
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# python, not curl (the slim image has no curl): exit 0 when GET /health answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
# Serving on 0.0.0.0 needs KAILASH_NB_JWT_SECRET: without it the server refuses to start.
ENTRYPOINT ["kailash-nb", "serve"]
