# syntax=docker/dockerfile:1
#
# One image for every role of a Loupe deployment: the API, the runner and
# the scheduler are `loupe-server --role api|runner|scheduler` (or
# LOUPE_ROLE); without either it runs all three (SQLite in the data volume).
# Configuration is LOUPE_* variables, or a TOML file mounted and named with
# `--config` / LOUPE_CONFIG. See docs/operations-deploy.md and
# deploy/compose.yaml.
#
#   docker build -t loupe .
#   docker run -p 127.0.0.1:8080:8080 -v loupe-data:/var/lib/loupe loupe
#   docker run loupe --role runner          (with LOUPE_METADATA_URL=postgres://…)
#   docker run --entrypoint loupe loupe query --source /usr/share/loupe/sample-data "select 1"

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The same release build as the Debian package (scripts/build-release says
# which features). The caches keep the registry and the compiled
# dependencies between builds on one builder; the binaries leave the cache
# mount through /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    ./scripts/build-release \
 && install -d /out/usr/bin /out/usr/share/loupe \
 && install -m 0755 target/release/loupe-server target/release/loupe /out/usr/bin/ \
 && strip --strip-debug /out/usr/bin/loupe-server /out/usr/bin/loupe \
 && cp -r sample-data /out/usr/share/loupe/sample-data \
 && chmod -R u=rwX,go=rX /out/usr/share/loupe \
 && install -D -m 0755 deploy/docker/healthcheck /out/usr/local/bin/loupe-healthcheck

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to datasources, PostgreSQL metadata and S3 use the
# system's roots. curl: the health check. Not pinned to versions: Debian
# replaces a version on each security update, and a rebuild should get it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 loupe \
 && useradd --system --uid 10001 --gid loupe --home-dir /var/lib/loupe \
        --no-create-home --shell /usr/sbin/nologin loupe \
 && install -d -o loupe -g loupe -m 0700 /var/lib/loupe
COPY --from=build /out/ /

# Container defaults; every one can be overridden with -e or a mounted
# --config file (variables win over the file).
ENV LOUPE_LISTEN=0.0.0.0:8080 \
    LOUPE_DATA_DIR=/var/lib/loupe \
    LOUPE_SAMPLE_DATA_DIR=/usr/share/loupe/sample-data \
    LOUPE_LOG_FORMAT=json

USER 10001:10001
WORKDIR /var/lib/loupe
# Metadata (SQLite), local results and generated secrets of a one-process
# deployment. Processes that share PostgreSQL and S3 need no volume, given
# LOUPE_SECRET_KEY and LOUPE_SIGNING_SECRET.
VOLUME ["/var/lib/loupe"]
EXPOSE 8080

# API roles: /health/ready answers; runner and scheduler roles serve no
# HTTP and are healthy while they run.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["loupe-healthcheck"]
# loupe-server finishes requests and runs on SIGTERM within shutdown_grace
# (30 s): give `docker stop` a longer timeout (-t 45, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["loupe-server"]
