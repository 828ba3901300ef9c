#!/usr/bin/env bash
# Installs the Debian package `chromium` for tests/ui_browser.rs, which drives it
# headless with playwright-core (a devDependency of ui/web, installed by the ui crate's
# build with `npm ci`). Idempotent. Node.js and npm come from scripts/test-deps/node.sh.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    # Refresh the lists first: a fresh machine's may be missing or stale.
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# /usr/bin/chromium is a wrapper script; ask the binary itself for its version.
/usr/lib/chromium/chromium --version 2>/dev/null || /usr/bin/chromium --version 2>/dev/null || true
