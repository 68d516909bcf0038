#!/usr/bin/env bash
# Installs what the test suite needs outside the project's venv (idempotent).
# Later issues add the real FHIR server venv and Debian's chromium here.
set -euo pipefail
cd "$(dirname "$0")/.."
