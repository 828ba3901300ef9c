#!/bin/sh
# PyPI `kubernetes-validate` for tests/deploy_k8s.rs: it checks every manifest in
# deploy/k8s/ against the Kubernetes API schemas (no cluster runs here).
# Idempotent: nothing is installed when the module is already importable.
set -eu
if python3 -c 'import kubernetes_validate' 2>/dev/null; then
    exit 0
fi
# Debian's python marks its site-packages as externally managed (PEP 668); tests run as root in CI.
pip_flags="--quiet --disable-pip-version-check"
if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_flags="$pip_flags --break-system-packages"
fi
# shellcheck disable=SC2086
python3 -m pip install $pip_flags kubernetes-validate
python3 -c 'import kubernetes_validate' 
