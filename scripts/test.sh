#!/usr/bin/env bash
# Install everything the tests need, then run them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: ffmpeg (shared libraries for py-feat's torchcodec, and the CLI for one rotation
# test), Chromium for browser tests, espeak-ng/flite voices and pocketsphinx's recorded speech for
# the benchmark generator.
DEBIAN_PACKAGES="ffmpeg chromium chromium-driver espeak-ng flite pocketsphinx-testdata"
missing=$(for p in $DEBIAN_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

python -m pip install -q -r requirements-dev.txt
python -m pip install -q --no-deps -r requirements-pyfeat.txt
python -m pip install -q --no-deps -r requirements-reference.txt
python -m pytest "$@"
