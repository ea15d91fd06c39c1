#!/usr/bin/env bash
# The Debian packages the tests and benches drive: chromium (the home page rendered headless),
# newsboat (a real feed reader subscribing to the served feed), wrk and nginx
# (bench/serve_bench.py). Installs only what is missing; uses sudo only when not root.
set -euo pipefail
PACKAGES=(chromium newsboat wrk nginx)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null || { echo "install as root: apt-get install -y ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "installing ${missing[*]} (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" > /dev/null
