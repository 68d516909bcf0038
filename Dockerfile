# syntax=docker/dockerfile:1
# osteo-cds: the CDS Hooks service (`osteo-cds serve`, gunicorn in-process) as a non-root user.
# Runtime dependencies come from uv.lock (`uv export --frozen --no-dev`, hash-checked), so the image runs the
# same versions as CI; no dev tools, compilers or uv end up in the final stage.
#
#   docker build -t osteo-cds .
#   docker run --rm -p 127.0.0.1:8080:8080 -e OSTEO_CDS_TRUSTED_ISSUERS='{"https://ehr.example":"https://ehr.example/jwks"}' osteo-cds
#   docker run --rm -i osteo-cds evaluate - < bundle.json

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtual environment with the locked runtime dependencies and the project's wheel ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# The same uv as the Makefile's UV_VERSION, so the export reads uv.lock exactly as `make install` does.
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv export --quiet --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file /tmp/requirements.txt \
    && python -m venv /opt/osteo-cds \
    && /opt/osteo-cds/bin/pip install --no-cache-dir --require-hashes --requirement /tmp/requirements.txt
COPY cds_service ./cds_service
COPY cards ./cards
COPY cues ./cues
# The wheel force-includes cards/ as cds_service/card_texts and cues/ as cds_service/cues (pyproject.toml): the
# card wording and the report-reading cues ship with it.
RUN /opt/osteo-cds/bin/pip install --no-cache-dir --no-deps . \
    && /opt/osteo-cds/bin/python -I -c "import cds_service.cards.texts as t; \
assert t._texts_dir().name == 'card_texts', t._texts_dir(); t.card_texts('en'); t.card_texts('zh-CN'); \
import cds_service.facts.exam_names as e; assert e._cues_file().parent.parent.name == 'cds_service'; e._cues(); \
import cds_service.facts.cues as c, cds_service.facts.report_text; assert c.cues_dir().parent.name == 'cds_service'"

# --- runtime --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="osteo-cds" \
      org.opencontainers.image.description="CDS Hooks 2.0 service for the 2020 Chinese osteoporosis imaging and BMD consensus" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin osteo \
    && mkdir -p /var/lib/osteo-cds \
    && chown osteo:osteo /var/lib/osteo-cds
COPY --from=build /opt/osteo-cds /opt/osteo-cds
# OSTEO_CDS_AUTH=jwt: every hook and feedback call needs a JWT of an issuer in OSTEO_CDS_TRUSTED_ISSUERS
# (the service refuses to start in jwt mode without one). The SQLite audit store and JWT replay store
# live in /var/lib/osteo-cds (a volume for one machine); several replicas need OSTEO_CDS_DATABASE_URL
# (PostgreSQL) and OSTEO_CDS_REDIS_URL instead, see docs/deployment.md.
ENV PATH=/opt/osteo-cds/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OSTEO_CDS_AUTH=jwt \
    OSTEO_CDS_DATABASE_URL=sqlite:////var/lib/osteo-cds/osteo-cds.db \
    OSTEO_CDS_REPLAY_DB=/var/lib/osteo-cds/jti.sqlite3
WORKDIR /var/lib/osteo-cds
VOLUME ["/var/lib/osteo-cds"]
USER 10001:10001
EXPOSE 8080
# No curl in slim images: the liveness probe is Python's own urllib (exit 1 on any error or non-2xx).
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
# Exec form: osteo-cds (the gunicorn master) is PID 1 and gets SIGTERM directly for a graceful stop.
ENTRYPOINT ["osteo-cds"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
