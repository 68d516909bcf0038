#!/usr/bin/env bash
# Installs what the test suite needs outside the project's venv (idempotent, safe to re-run):
#  - Debian's chromium (Playwright drives it with executable_path), a CJK font and docker-compose;
#  - the real FHIR server sekmet-fhir==0.1.1 in a venv of its own (.fhir-server/): it pins its own
#    fastapi/pydantic, so it must stay out of the project's .venv. Its dependencies are pinned by
#    scripts/fhir-server-constraints.txt so that CI is reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: chromium (browser tests), a CJK font (readable Chinese in screenshots),
# docker-compose (validates docker-compose.yml against the compose spec; no engine is needed),
# a Java runtime (Spark).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# Java 17 for PySpark (osteo-cds screen --engine spark, tests/screen/test_spark.py).
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test-setup: missing ${missing[*]} and cannot apt-get install; the tests needing them are skipped" >&2
  fi
fi

if [ ! -x .fhir-server/bin/sekmet ]; then
  echo "test-setup: installing sekmet-fhir==0.1.1 into .fhir-server/"
  python3 -m venv .fhir-server
  .fhir-server/bin/pip install --quiet --disable-pip-version-check \
    -c scripts/fhir-server-constraints.txt "sekmet-fhir==0.1.1"
fi
