# syntax=docker/dockerfile:1
# engagehook image: one image for every role (web, worker, flower, migrate, serve).
# Multi-stage: the build stage installs the package into a virtualenv; only that virtualenv
# reaches the slim runtime stage, which runs as an unprivileged user.
# Python 3.11, the version CI tests on; dependency versions come from requirements.lock.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The same path in both stages: a virtualenv's scripts point at their own absolute path.
RUN python -m venv /opt/engagehook
# Dependencies first, pinned by the lock, so editing the code or the docs does not rebuild
# them. The package metadata names README.md as its long description: an empty stand-in
# serves here, and the real one is copied with the code below.
COPY pyproject.toml requirements.lock ./
RUN mkdir -p engagehook ingest workers handlers \
    && touch README.md \
    && touch engagehook/__init__.py ingest/__init__.py workers/__init__.py handlers/__init__.py \
    && /opt/engagehook/bin/pip install -c requirements.lock . \
    && /opt/engagehook/bin/pip uninstall --yes engagehook
COPY README.md ./
COPY core ./core
COPY engagehook ./engagehook
COPY ingest ./ingest
COPY workers ./workers
COPY handlers ./handlers
RUN /opt/engagehook/bin/pip install --no-deps -c requirements.lock . \
    && /opt/engagehook/bin/engagehook --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/engagehook/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENGAGEHOOK_DATA_DIR=/var/lib/engagehook
# A fixed uid/gid, so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 engagehook \
    && useradd --system --uid 10001 --gid engagehook --no-create-home \
       --home-dir /var/lib/engagehook --shell /usr/sbin/nologin engagehook \
    && mkdir -p /var/lib/engagehook \
    && chown engagehook:engagehook /var/lib/engagehook
COPY --from=build /opt/engagehook /opt/engagehook
USER engagehook:engagehook
WORKDIR /var/lib/engagehook
# 8000: web (POST /webhooks, /readyz, /metrics); 9808: worker metrics; 5555: Flower.
EXPOSE 8000 9808 5555
# For the default command (serve, which includes web): ready while a webhook can be stored
# (the broker or the spool takes it). Compose gives worker and Flower checks of their own.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)"]
ENTRYPOINT ["engagehook"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
