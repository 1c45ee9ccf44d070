# fleetboot container image.
#
#   docker build -t fleetboot .
#   docker run --net=host --cap-add=NET_ADMIN --cap-add=NET_RAW -v /srv/fleetboot:/data fleetboot \
#       serve --interface eth0 --dhcp proxy
#
# DHCP and TFTP need the host's network (--net=host): broadcast DHCP does not cross Docker's NAT.
# The iPXE binaries come from Debian's ipxe package at build time (scripts/fetch-ipxe.sh), the
# signed shim + GRUB from Debian's shim-signed and grub-efi-amd64-signed
# (scripts/fetch-secureboot.sh); both are embedded in the binary; nothing third-party is
# committed to the repository, and .dockerignore keeps the host's own copies, data/, the API
# token and build outputs out of the context.

# The exact Go of go.mod's go line: the official images set GOTOOLCHAIN=local, so an older
# 1.26.x would refuse to build instead of fetching the toolchain.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# The package lists stay (this stage is thrown away): the fetch scripts download their pinned
# packages from the mirror of this image's own apt sources (scripts/lib/debfetch.sh; no host
# name anywhere here), and fetch-ipxe.sh's fallback installs the image's ipxe package.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates debian-archive-keyring
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN bash scripts/fetch-ipxe.sh \
    && bash scripts/fetch-secureboot.sh \
    && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/fleetboot ./cmd/fleetboot \
    && /out/fleetboot version

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/fleetboot /usr/local/bin/fleetboot
VOLUME /data
EXPOSE 67/udp 69/udp 4011/udp 8080/tcp
ENTRYPOINT ["/usr/local/bin/fleetboot"]
CMD ["serve", "--data", "/data"]
