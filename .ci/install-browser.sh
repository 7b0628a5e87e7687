#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/test_dashboard.py, marked `browser`; Playwright
# drives /usr/bin/chromium, no browser download). Idempotent and quiet: does nothing when it is installed.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
