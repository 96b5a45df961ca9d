"""The container recipe runs what the tests run: the same install, `privacy-desk run`, a non-root
user and the database on a volume (no container engine runs here; `check` and `run` themselves are
tested in tests/test_check.py and tests/test_e2e.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_dockerfile_installs_the_package_and_runs_it_as_a_user_with_the_database_on_a_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"the Dockerfile copies {part}, which is not in the repository"
    packages = {p.split("*")[0] for p in re.findall(r'"([a-z_]+\*)"', (ROOT / "pyproject.toml").read_text())}
    copied = set(re.findall(r"^COPY (\w+) ", text, re.M))
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    assert "RUN pip install ." in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'VOLUME ["/data"]' in text and "DATABASE_PATH=/data/" in text
    assert text.rstrip().endswith('CMD ["privacy-desk", "run"]')


def test_compose_runs_the_image_with_the_settings_file_and_a_volume() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "build: ." in text and "env_file: .env" in text and "privacy-desk-data:/data" in text
