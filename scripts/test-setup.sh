#!/usr/bin/env bash
# Installs what the test suite needs outside the project's venv (idempotent, safe to re-run):
#  - Debian's chromium, for the browser tests (Playwright drives it with executable_path);
#  - the real FHIR server sekmet-fhir==0.1.1 in a venv of its own (.fhir-server/): it pins its own
#    fastapi/pydantic, so it must stay out of the project's .venv. Its dependencies are pinned by
#    scripts/fhir-server-constraints.txt so that CI is reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-setup: installing Debian chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null
  else
    echo "test-setup: chromium not found and cannot apt-get install it; browser tests will be skipped" >&2
  fi
fi

if [ ! -x .fhir-server/bin/sekmet ]; then
  echo "test-setup: installing sekmet-fhir==0.1.1 into .fhir-server/"
  python3 -m venv .fhir-server
  .fhir-server/bin/pip install --quiet --disable-pip-version-check \
    -c scripts/fhir-server-constraints.txt "sekmet-fhir==0.1.1"
fi
