#!/usr/bin/env bash
# The project's test command (README: "./test.sh"). It installs what the tests need that Go modules do not
# bring (Debian's Chromium, for the landing page's browser test), then vets and runs every test. Go modules
# come from the module proxy; the Temporal server the tests use is built from them and runs in process.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${SKIP_BROWSER_TESTS:-}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium for the browser test" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

go vet ./...
go test -count=1 -timeout 45m ./...
