#!/usr/bin/env bash
# This machine's podman (Debian bookworm's 4.3, as root, inside a sandbox) needs two settings:
# runc as the runtime (crun is not installed), and no default ulimits (the sandbox refuses to
# raise the nofile limit podman asks for). Idempotent: only adds what is missing.
set -euo pipefail

conf=/etc/containers/containers.conf
mkdir -p /etc/containers
touch "$conf"
if ! grep -q '^\[containers\]' "$conf"; then
    printf '\n[containers]\n' >>"$conf"
fi
if ! grep -q '^default_ulimits' "$conf"; then
    sed -i '/^\[containers\]/a default_ulimits = []' "$conf"
fi
if ! grep -q '^\[engine\]' "$conf"; then
    printf '\n[engine]\nruntime = "runc"\n' >>"$conf"
elif ! grep -q '^runtime *=' "$conf"; then
    sed -i '/^\[engine\]/a runtime = "runc"' "$conf"
fi
