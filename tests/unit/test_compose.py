"""The docker deployment's promises, checked statically: docker-compose.yml is valid Compose, only caddy
publishes a port (on 127.0.0.1), only ollama-pull reaches the internet, and the images match the tested
versions. No docker needed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")
OFFLINE_SERVICES = ("archivist", "ollama", "chroma")


def load(name: str = "docker-compose.yml") -> dict[str, Any]:
    document = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return load()["services"]


def service_networks(service: dict[str, Any]) -> list[str]:
    """The networks a service joins (list or mapping form); none named means compose's `default`."""
    networks = service.get("networks", ["default"])
    return list(networks)


def internal_networks(compose: dict[str, Any]) -> set[str]:
    return {name for name, spec in (compose.get("networks") or {}).items() if (spec or {}).get("internal") is True}


def published_host_ips(service: dict[str, Any]) -> list[str]:
    """The host address of each published port, short (`ip:host:container`) or long syntax."""
    addresses = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            addresses.append(str(port.get("host_ip", "")))
        else:
            parts = str(port).split(":")
            addresses.append(parts[0] if len(parts) == 3 else "")
    return addresses


def chromadb_constraint() -> str:
    text = (REPO / "constraints.txt").read_text(encoding="utf-8")
    match = re.search(r"^chromadb==(\S+)$", text, re.MULTILINE)
    assert match, "constraints.txt pins no chromadb version"
    return match.group(1)


@pytest.mark.corpus
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_against_the_compose_spec(shared_data: Path, name: str) -> None:
    import jsonschema

    spec_path = shared_data / "compose-spec.json"
    if not spec_path.is_file():
        pytest.skip(f"the Compose specification's schema is absent ({spec_path})")
    schema = json.loads(spec_path.read_text(encoding="utf-8"))
    # The spec names draft-07 as https://json-schema.org/draft-07/schema, a spelling jsonschema does not map.
    assert "draft-07" in schema["$schema"]
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(load(name)), key=lambda error: list(error.path))
    assert [f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors] == []


def test_services_are_the_five_expected() -> None:
    assert sorted(services()) == ["archivist", "caddy", "chroma", "ollama", "ollama-pull"]


def test_every_published_port_is_bound_to_loopback() -> None:
    published = {name: published_host_ips(service) for name, service in services().items() if "ports" in service}
    assert published == {"caddy": ["127.0.0.1"]}
    assert services()["caddy"]["ports"] == ["127.0.0.1:8501:8501"]


def test_archivist_ollama_and_chroma_sit_only_on_internal_networks() -> None:
    compose = load()
    internal = internal_networks(compose)
    assert internal, "no network has internal: true"
    for name in OFFLINE_SERVICES:
        networks = service_networks(compose["services"][name])
        assert networks and set(networks) <= internal, f"{name} is on {networks}, not only on {sorted(internal)}"
        assert "network_mode" not in compose["services"][name]


def test_only_caddy_and_ollama_pull_have_a_network_with_a_route_out() -> None:
    compose = load()
    internal = internal_networks(compose)
    outside = sorted(name for name, service in compose["services"].items()
                     if set(service_networks(service)) - internal)
    assert outside == ["caddy", "ollama-pull"]
    # caddy bridges the two: it reaches archivist on the internal network and is published on the other.
    assert set(service_networks(compose["services"]["caddy"])) & internal


def test_ollama_pull_runs_only_in_the_setup_profile_and_pulls_gpt_oss() -> None:
    compose = load()
    profiled = {name: service.get("profiles") for name, service in compose["services"].items()
                if service.get("profiles")}
    assert profiled == {"ollama-pull": ["setup"]}
    pull = compose["services"]["ollama-pull"]
    assert "ollama-models:/root/.ollama" in pull["volumes"]
    assert "ollama-models:/root/.ollama" in compose["services"]["ollama"]["volumes"]
    script = "\n".join(pull["command"])
    assert "ollama serve" in script and "ollama pull" in script
    assert "gpt-oss:20b" in pull["environment"]["ARCHIVIST_MODEL"]


def test_chroma_image_matches_the_chromadb_wheel() -> None:
    chroma = services()["chroma"]
    assert chroma["image"] == f"chromadb/chroma:{chromadb_constraint()}"
    assert chroma["environment"]["ANONYMIZED_TELEMETRY"] == "FALSE"
    assert "/api/v2/heartbeat" in " ".join(chroma["healthcheck"]["test"])


def test_ollama_health_check_uses_ollama_list() -> None:
    ollama = services()["ollama"]
    assert ollama["image"].startswith("ollama/ollama:")
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]


def test_archivist_talks_to_ollama_and_chroma_by_service_name_and_reads_documents_read_only() -> None:
    archivist = services()["archivist"]
    environment = archivist["environment"]
    assert environment["OLLAMA_HOST"] == "http://ollama:11434"
    assert environment["ARCHIVIST_CHROMA_URL"] == "http://chroma:8000"
    assert environment["ARCHIVIST_DATA_DIR"] == "/data"
    assert "127.0.0.1:8501" in environment["ARCHIVIST_ALLOWED_HOSTS"]
    assert "${DOCS:-./documents}:/documents:ro" in archivist["volumes"]
    assert archivist["command"] == ["archivist", "ui", "/documents", "--host", "0.0.0.0", "--port", "8501"]
    assert services()["caddy"]["command"] == ["caddy", "reverse-proxy", "--from", ":8501", "--to", "archivist:8501"]


def test_gpu_override_only_reserves_gpus_for_ollama() -> None:
    override = load("docker-compose.gpu.yml")
    assert list(override["services"]) == ["ollama"]
    assert list(override["services"]["ollama"]) == ["deploy"]
    devices = override["services"]["ollama"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_dockerfile_installs_cpu_torch_before_the_project_and_runs_offline_as_non_root() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    assert any(line == "FROM python:3.11-slim" for line in lines)
    torch = next(index for index, line in enumerate(lines) if line.startswith("RUN") and "torch==2.13.0" in line)
    assert "download.pytorch.org/whl/cpu" in lines[torch]
    project = next(index for index, line in enumerate(lines)
                   if line.startswith("RUN pip install") and line.endswith(" ."))
    assert torch < project
    assert "-c constraints.txt" in lines[project]
    assert any(line.startswith("USER ") and line != "USER root" for line in lines)
    assert any("HF_HUB_OFFLINE=1" in line for line in lines)


def test_dockerignore_keeps_the_environment_and_artifacts_out_of_the_build() -> None:
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", "test-artifacts", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"} <= ignored


def interpolate(value: str, environment: dict[str, str]) -> str:
    """Compose's `${NAME:-default}` and `${NAME}` interpolation, enough for this file's values."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}",
                  lambda match: environment.get(match.group(1)) or match.group(2) or "", value)


def test_the_page_answers_to_the_names_caddy_forwards_and_no_others() -> None:
    from ui.guard import allowed_hosts, check_request

    extra = interpolate(services()["archivist"]["environment"]["ARCHIVIST_ALLOWED_HOSTS"], {})
    allowed = allowed_hosts("0.0.0.0", 8501, extra.split(","))
    # caddy passes the browser's Host (and Origin) through unchanged.
    for name in ("127.0.0.1:8501", "localhost:8501"):
        assert check_request(name, f"http://{name}", allowed) is None
    assert (check_request("evil.example:8501", None, allowed) or "").startswith(
        "Refused: this page does not answer to the name 'evil.example:8501'.")
    assert check_request("127.0.0.1:8501", "http://evil.example:8501", allowed) == (
        "Refused: requests from 'http://evil.example:8501' are not allowed.")
