# Container image of the registrar (and rsp), built in two stages:
#   docker build -t rserpool-registrar .
#   docker run --rm -p 3863:3863 -v registrar-data:/var/lib/registrar rserpool-registrar
# See docs/operations.md ("Containers") for clusters and the ports.

ARG GO_VERSION=1.26

# ---- build: the static binaries, with the version stamped in ----
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
RUN CGO_ENABLED=0 make build VERSION="${VERSION}" COMMIT="${COMMIT}" \
 && mkdir -p /out/var/lib/registrar

# ---- run: the binaries on a distroless base, as an unprivileged user ----
FROM gcr.io/distroless/static-debian12:nonroot AS run
COPY --from=build /src/bin/registrar /src/bin/rsp /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/var/lib/registrar /var/lib/registrar
COPY docs/deploy/container.json /etc/registrar/registrar.json
USER 65532:65532
VOLUME ["/var/lib/registrar"]
# ASAP (PEs and PUs), ENRP (other registrars), admin API and /metrics,
# gossip, raft.
EXPOSE 3863/tcp 9901/tcp 8863/tcp 7946/tcp 7946/udp 7947/tcp
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
  CMD ["/usr/local/bin/registrar", "status", "-http", "127.0.0.1:8863"]
ENTRYPOINT ["/usr/local/bin/registrar"]
CMD ["agent", "-config", "/etc/registrar/registrar.json"]
