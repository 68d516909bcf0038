# osteo-cds: the CDS Hooks service, served by gunicorn as a non-root user.
# Dependencies come from uv.lock (hash-checked), so the image matches CI.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN pip install "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv export --quiet --frozen --no-dev --no-emit-project --format requirements-txt --output-file /tmp/requirements.txt \
    && python -m venv /opt/osteo-cds \
    && /opt/osteo-cds/bin/pip install --require-hashes --requirement /tmp/requirements.txt
COPY cds_service ./cds_service
COPY cards ./cards
RUN /opt/osteo-cds/bin/pip install --no-deps .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin osteo \
    && mkdir -p /var/lib/osteo-cds \
    && chown osteo:osteo /var/lib/osteo-cds
COPY --from=build /opt/osteo-cds /opt/osteo-cds
ENV PATH=/opt/osteo-cds/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OSTEO_CDS_AUTH=jwt \
    OSTEO_CDS_DATABASE_URL=sqlite:////var/lib/osteo-cds/osteo-cds.db
WORKDIR /var/lib/osteo-cds
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["osteo-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
