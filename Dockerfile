# bingfa in a container: a static (musl) binary in an image that holds nothing else.
#
#   docker build -t bingfa .            (or podman build)
#   docker run --rm -p 8080:8080 -v "$PWD/site:/srv:ro" bingfa
#
# The site is mounted at /srv; bingfa listens on 8080 and serves /metrics and /healthz on 9100.
# It runs as an unprivileged user, and checks its own health with `bingfa --health-check`
# (the image has no shell and no curl). SIGTERM drains for --drain-delay (here 5 s: load
# balancers see /healthz turn 503 and move away), then stops within --shutdown-timeout.
#
# CI reaches neither Docker Hub nor the musl target, so it does not run the Alpine stage:
# .ci/container builds a static glibc binary (crt-static) instead, runs it in an empty root,
# then builds this file's last stage around it with podman and runs that image (its
# HEALTHCHECK passes, it serves a file as uid 65532, it exits 0 on SIGTERM).

FROM rust:1-alpine AS build
# musl-dev for the static link, gcc for libzstd (built by the zstd crate's build script).
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && strip target/release/bingfa \
    && ! ldd target/release/bingfa 2>/dev/null

FROM scratch
# .ci/container swaps this line, as written, for a COPY of its own static binary.
COPY --from=build /src/target/release/bingfa /bingfa
USER 65532:65532
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=7s --start-period=5s \
    CMD ["/bingfa", "--health-check", "http://127.0.0.1:9100/healthz"]
ENTRYPOINT ["/bingfa", "--bind", "0.0.0.0:8080", "--metrics", "0.0.0.0:9100", \
            "--drain-delay", "5", "--shutdown-timeout", "20"]
CMD ["/srv"]
