#!/usr/bin/env bash
# The widget tests drive Debian's Chromium (/usr/bin/chromium) with Playwright for Python; never a downloaded
# browser (`playwright install` is not used). Installs the Debian package when it is missing. Idempotent.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
