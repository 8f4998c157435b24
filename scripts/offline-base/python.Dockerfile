# Stand-in for python:3.11-slim, from Debian's packages. What the service Dockerfiles rely on:
# `python`/`python3` 3.11 and `pip` on PATH, `python -m venv`, system-wide `pip install` allowed,
# packages under /usr/local/lib/python3.11/site-packages importable, Python's C headers, HTTPS
# trusted like the host.
ARG DEBIAN_IMAGE=digits-base-debian:offline
FROM ${DEBIAN_IMAGE}

# The build host's CA bundle: kept by update-ca-certificates through later package installs.
COPY build-host-ca-bundle.crt /usr/local/share/ca-certificates/build-host-ca-bundle.crt
COPY build-host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /tmp
# Debian's mirror serves only the current point release: pinning versions here would break it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-pip python3-venv python-is-python3 netbase tzdata \
    # Python's C headers, as the official image has them (a builder stage may compile a
    # source-only package), without the -dev packages' static library and dependencies.
    && apt-get download libpython3.11-dev \
    && dpkg-deb --fsys-tarfile libpython3.11-dev_*.deb | tar -x -C / ./usr/include \
    && rm -f /tmp/libpython3.11-dev_*.deb \
    && rm -rf /var/lib/apt/lists/* \
    # The official image's pip installs system-wide; Debian's refuses unless told otherwise.
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && mkdir -p /usr/local/lib/python3.11/site-packages \
    && echo 'import site; site.addsitedir("/usr/local/lib/python3.11/site-packages")' \
        > /usr/lib/python3/dist-packages/zz-usr-local-site-packages.pth \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip3 \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip \
    && python --version && pip --version && python -m venv --help > /dev/null \
    && find /usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +

# What an image built on this one inherits: the default shell and working directory.
SHELL ["/bin/sh", "-c"]
WORKDIR /
ENV LANG=C.UTF-8 \
    PYTHON_VERSION=3.11
CMD ["python3"]
