#!/usr/bin/env bash
# Make the local base image the Containerfile builds on by default, for a machine that reaches
# Debian's package mirror but no image registry: debootstrap a minimal Debian with Python, trim
# what a service never reads, and import the tree as an image.
#
#   deploy/container/base-image.sh [IMAGE] [SUITE]
#   (default localhost/hotspot-webhooks-base:bookworm, bookworm; runs as root)
#
# On a machine that reaches a registry, skip this and build with
# --build-arg BASE_IMAGE=docker.io/library/python:3.12-slim (or debian:bookworm-slim plus
# python3-venv): see docs/deploy.md.
set -euo pipefail

image="${1:-localhost/hotspot-webhooks-base:bookworm}"
suite="${2:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$image" && [ "${REBUILD:-0}" != 1 ]; then
    echo "base image $image exists (REBUILD=1 makes it again)"
    exit 0
fi

root="$(mktemp -d /var/tmp/hotspot-webhooks-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT

# minbase: dpkg, apt and the essential set; python3-venv brings ensurepip for the build stage
debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$root" "$mirror" >/dev/null

# Nothing in a container reads these; they are a third of the tree.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/tmp/*

tar -C "$root" --numeric-owner -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null 2>&1
echo "base image $image: $(podman image inspect --format '{{.Size}}' "$image") bytes"
