# ecr-ocir-sync: the sync service (`ecr-ocir-sync serve`) on port 8080, operations on 8081.
#
#   docker build -t <registry>/ecr-ocir-sync:<version> .
#
# Two stages: the builder installs the project and its dependencies into a venv
# at /opt/venv; the runtime stage gets only that venv (no pip, no setuptools, no
# compiler, no source tree). The dependencies are requirements.lock, every file
# checked against its hash: the same pins the test suite runs on (`make test`
# installs requirements-dev.lock, which is this lock plus the dev tools). The lock
# includes the `oci` extra (OCIR repository creation with OCI_COMPARTMENT_ID).
# Every dependency ships manylinux wheels for CPython 3.11, so the builder needs
# no compiler either.
#
# Both stages use the same base image: the venv's python is a symlink to the
# base image's /usr/local/bin/python3.11. Pin it by digest as well for
# byte-for-byte rebuilds (python:3.11.14-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# .dockerignore admits only these: no tests, bench, demo, .venv or .git in the context.
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src

# The locked dependencies first, then the project itself without resolving
# anything (a regular, non-editable install builds its wheel); `pip check` fails
# the build if the lock lacks one of the project's requirements. Then the installers
# go, they have no business at run time.
# Bytecode is compiled once here, as root, because the runtime root filesystem
# is read-only and PYTHONDONTWRITEBYTECODE stops lazy compilation anyway.
# DL3013 (pin versions in pip): the unpinned install is this project, from the
# build context; every dependency is pinned and hash-checked by requirements.lock.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps '.[oci]' \
    && pip check \
    && pip uninstall --yes pip setuptools \
    && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}

# Fixed IDs: the Kubernetes manifests run as 10001 with fsGroup 10001.
ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="ecr-ocir-sync" \
      org.opencontainers.image.description="Mirror AWS ECR images to Oracle OCIR regions" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_GID}" ecr-ocir-sync \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ecr-ocir-sync \
    && install -d -o "${APP_UID}" -g "${APP_GID}" -m 0750 /var/lib/ecr-ocir-sync

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SYNC_DATA_DIR=/var/lib/ecr-ocir-sync

# The job store (jobs.sqlite3 and its WAL); blobs never touch the disk.
VOLUME ["/var/lib/ecr-ocir-sync"]

USER ${APP_UID}:${APP_GID}
WORKDIR /var/lib/ecr-ocir-sync
EXPOSE 8080 8081

# For `docker run`; Kubernetes ignores it and uses the probes in the manifests.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=4)"]

ENTRYPOINT ["ecr-ocir-sync"]
CMD ["serve"]
