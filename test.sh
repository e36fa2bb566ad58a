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
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt-ed:" >&2
  echo "$unformatted" >&2
  exit 1
fi

# staticcheck, and Temporal's workflowcheck (no map order, clock, randomness or goroutine in workflow code;
# order-insensitive map loops are marked //workflowcheck:ignore), at pinned versions from the module proxy.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./...

# Each package has 15 minutes (the slowest takes about 4 on two cores), so one that hangs fails the run
# well inside CI's half hour. CI shows the end of the output: on failure the run ends with a digest of the
# failed tests and, for a hang, the tests that were running, read back from the full log.
log="${TEST_LOG:-$(mktemp -t saasengine-test.XXXXXX)}"
if ! go test -count=1 -timeout 15m ./... 2>&1 | tee "$log"; then
  {
    echo
    echo "test.sh: the run failed; full output in $log. Failed and hung tests:"
    # Logger and screenshot lines left out, so that each failure's own message shows.
    grep -v -E '^\s*(logger\.go|[a-z0-9_]+\.go:[0-9]+: screenshot):' "$log" |
      grep -E -A12 '^--- FAIL|^panic: test timed out|blocked in Close' | head -80 || true
    grep -E '^(FAIL|ok) ' "$log" || true
  } >&2
  exit 1
fi

# The race detector on the packages with concurrency of their own (HTTP clients and their token and key
# caches, the demo provisioner's database, the emulator's delivery loop). Packages whose tests embed the
# Temporal server are left out: building the server with -race costs more than CI's time budget.
if command -v "$(go env CC)" >/dev/null 2>&1; then
  go test -race -count=1 -timeout 10m ./marketplace ./entra ./provisioning ./encryption ./activities \
    ./activities/subscription ./activities/reconciliation ./emulator
else
  echo "test.sh: no C compiler ($(go env CC)) for the race detector; race tests skipped" >&2
fi
