# syntax=docker/dockerfile:1
#
# Flowgate's container image: a static binary on a distroless base, no
# shell, running as an unprivileged user. Build it from the repository root:
#
#   docker build -t flowgate:dev --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) .
#
# docs/operations.md explains the volumes, variables and health check.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=
# CGO off: the SQLite driver is pure Go, so the binary needs no libc.
# .git is not copied (.dockerignore), so the commit comes in as COMMIT.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/flowgate/flowgate/internal/buildinfo.version=${VERSION} -X github.com/flowgate/flowgate/internal/buildinfo.commit=${COMMIT}" \
      -o /out/flowgate ./cmd/flowgate \
 && mkdir -p /out/data

# distroless/static: CA certificates, time zones and a "nonroot" user
# (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flowgate /usr/local/bin/flowgate
COPY --from=build --chown=65532:65532 /out/data /var/lib/flowgate
USER 65532:65532
WORKDIR /var/lib/flowgate
# The SQLite default lives on the volume; set FLOWGATE_DATABASE to a
# postgres:// URL for several servers.
ENV FLOWGATE_ADDR=:8080 \
    FLOWGATE_DATABASE=sqlite:/var/lib/flowgate/flowgate.db
EXPOSE 8080
VOLUME ["/var/lib/flowgate"]
# No curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/flowgate", "health"]
ENTRYPOINT ["/usr/local/bin/flowgate"]
CMD ["serve"]
