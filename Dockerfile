# syntax=docker/dockerfile:1
# engagehook image: one image for every role (web, worker, flower, migrate, serve).
# Multi-stage: the build stage installs the package into a virtualenv; only that virtualenv
# reaches the slim runtime stage, which runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The same path in both stages: a virtualenv's scripts point at their own absolute path.
RUN python -m venv /opt/engagehook
# Dependencies first, so editing the code does not rebuild them.
COPY pyproject.toml README.md ./
RUN mkdir -p engagehook ingest workers handlers \
    && touch engagehook/__init__.py ingest/__init__.py workers/__init__.py handlers/__init__.py \
    && /opt/engagehook/bin/pip install . \
    && /opt/engagehook/bin/pip uninstall --yes engagehook
COPY engagehook ./engagehook
COPY ingest ./ingest
COPY workers ./workers
COPY handlers ./handlers
RUN /opt/engagehook/bin/pip install --no-deps . \
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
ENTRYPOINT ["engagehook"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
