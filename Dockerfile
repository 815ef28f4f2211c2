# Sluice's container image for those who build with Docker or Podman; `make image` makes the
# same image without a daemon (testbed/ship/image). Build:
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) \
#                --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t sluice .
# Run, with a configuration that listens on 0.0.0.0:8080:
#   docker run --rm -p 8080:8080 -v $PWD/gateway.hcl:/etc/sluice/gateway.hcl:ro sluice
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
ARG SOURCE_DATE_EPOCH=0
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -tags grpcnotrace -pgo=cmd/sluice/release.pgo \
      -ldflags "-s -w -buildid= -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildTime=${SOURCE_DATE_EPOCH}" \
      -o /out/usr/local/bin/sluice ./cmd/sluice
# The non-root user (uid 65532) and the directories the scratch image needs.
RUN mkdir -p /out/etc/ssl/certs /out/etc/sluice /out/tmp && chmod 1777 /out/tmp && \
    cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nsluice:x:65532:65532:sluice:/nonexistent:/sbin/nologin\n' > /out/etc/passwd && \
    printf 'root:x:0:\nsluice:x:65532:\n' > /out/etc/group

FROM scratch
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8080/tcp 9901/tcp
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
STOPSIGNAL SIGTERM
ARG VERSION=dev
ARG COMMIT=
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Sluice, a WebAssembly-extensible API gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/sluice-gateway/sluice" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="scratch"
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "-c", "/etc/sluice/gateway.hcl", "-log-format", "json"]
