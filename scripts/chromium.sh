#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser tests (idempotent). Needs root (CI runs
# as root) or sudo; prints where it is. The tests find it at $SHOAL_CHROMIUM or /usr/bin/chromium.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || true
$sudo apt-get install -y -q --no-install-recommends chromium >/dev/null
echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"
