#!/usr/bin/env bash
# The project's test command (README: "./test.sh"). It installs what the tests need that Go modules do not
# bring, then runs every test. Go modules come from the module proxy; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
go test -count=1 -timeout 40m ./...
