#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (Playwright drives it at
# /usr/bin/chromium: test tools cannot download browsers of their own here).
# Installs chromium and chromium-driver with apt-get when it is missing; without root or
# apt-get, says why and leaves the browser tests to skip (or, under CI, to fail).
set -u
browser=/usr/bin/chromium

if [ -x "$browser" ]; then
  exit 0
fi
if [ "${EUID:-$(id -u)}" -ne 0 ]; then
  echo "ensure_browser: $browser is missing and this is not root; install Debian's chromium" \
    "to run the browser tests (sudo apt-get install chromium chromium-driver)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_browser: $browser is missing and apt-get is unavailable; install Chromium" \
    "at $browser to run the browser tests" >&2
  exit 0
fi

echo "ensure_browser: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
# Output goes to stderr: the Makefile reads nothing from this script, but keep stdout clean
# like tools/ensure_postgres.sh so both can be used the same way.
if apt-get update >&2 \
  && apt-get install -y --no-install-recommends chromium chromium-driver >&2; then
  echo "ensure_browser: installed $("$browser" --version 2>/dev/null)" >&2
else
  echo "ensure_browser: apt-get could not install chromium; the browser tests will be" \
    "skipped (or fail under CI)" >&2
fi
exit 0
