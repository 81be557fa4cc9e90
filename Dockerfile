# syntax=docker/dockerfile:1
# crowdpark: a static-ish release binary on a slim Debian, run as a non-root user.
#   docker build -t crowdpark .
#   docker run --rm -p 127.0.0.1:9898:9898 crowdpark demo      # no Kafka needed

FROM rust:1-bookworm AS build
# librdkafka is built from source by the rdkafka crate (C toolchain, OpenSSL,
# Cyrus SASL for GSSAPI, libcurl for OAUTHBEARER/OIDC; zstd is built in).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libssl-dev libsasl2-dev libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# No .git in the build context: pass the revision for `--version` and
# crowdpark_build_info, e.g. --build-arg CROWDPARK_GIT_REVISION=$(git rev-parse --short=12 HEAD).
ARG CROWDPARK_GIT_REVISION=unknown
ENV CROWDPARK_GIT_REVISION=${CROWDPARK_GIT_REVISION}
COPY src src
COPY config config
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin crowdpark \
 && strip target/release/crowdpark

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 libsasl2-modules-gssapi-mit libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin crowdpark \
 && mkdir -p /var/lib/crowdpark && chown 10001:10001 /var/lib/crowdpark
COPY --from=build /src/target/release/crowdpark /usr/local/bin/crowdpark
USER 10001:10001
# Inside a container the HTTP API must listen beyond loopback.
ENV CROWDPARK_HTTP__LISTEN=0.0.0.0:9898
# Local snapshots of the state changelog: mount a volume here to keep them.
ENV CROWDPARK_ENGINE__STATE_DIR=/var/lib/crowdpark
VOLUME /var/lib/crowdpark
EXPOSE 9898
ENTRYPOINT ["/usr/local/bin/crowdpark"]
CMD ["run"]
