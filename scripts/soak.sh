#!/usr/bin/env bash
# The long fault-injection runs (`make soak`): Redis away for longer than the sender's ~50 s
# window, thousands of events while workers are SIGKILLed, repeated `serve` restarts.
# Needs Redis and PostgreSQL on 127.0.0.1 like CI (.ci/run starts them); about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export ENGAGEHOOK_SOAK=1
export ENGAGEHOOK_REQUIRE_SERVICES=1
exec "${VENV:-.venv}/bin/pytest" tests/faults -m slow -p no:cacheprovider --durations=0 "$@"
