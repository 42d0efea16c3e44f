# syntax=docker/dockerfile:1
# kubesync agent image: a static musl binary on distroless (no shell, non-root).
#
#   docker build -t kubesync:dev .
#
# Built without the embedded kubesim cluster (`--no-default-features`): in a pod the agent
# always talks to the real API server through its service account.

FROM rust:1-alpine AS build
# musl toolchain, and OpenSSL/zlib as static libraries for libgit2 (https) and libssh2 (ssh).
RUN apk add --no-cache musl-dev openssl-dev openssl-libs-static zlib-static perl make pkgconf
# The musl target links statically by default. (Do not set RUSTFLAGS=+crt-static here: it
# would also apply to proc-macros, which must be dynamic libraries on the host.)
ENV OPENSSL_STATIC=1 \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --no-default-features --bin kubesync \
 && install -D -m 0755 target/release/kubesync /out/kubesync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kubesync /usr/local/bin/kubesync
# distroless "nonroot": uid/gid 65532, matching the chart's securityContext.
USER 65532:65532
ENV HOME=/tmp
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubesync"]
CMD ["run", "--config", "/etc/kubesync/kubesync.yaml"]
