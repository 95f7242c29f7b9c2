"""Publishing catalogue versions into PostgreSQL: validated, recorded once, immutable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pcm_common.catalogues import CatalogueError, load_catalogues
from pcm_common.catalogues.registry import history, publish
from pcm_common.postgres.client import connect
from pcm_testkit.isolation import isolated

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "catalogues"


def test_publish_once_refuse_changed_content_and_keep_the_history(tmp_path: Path) -> None:
    directory = tmp_path / "catalogues"
    shutil.copytree(SHIPPED, directory)
    with isolated("catalogues") as settings, connect(settings) as conn:
        first = publish(conn, load_catalogues(directory), "Ana Quispe (SGP)", "primera versión")
        assert {item.catalogue for item in first} == {"channels", "drivers", "kpis", "standards"}
        assert all(item.new for item in first)
        again = publish(conn, load_catalogues(directory), "Ana Quispe (SGP)", "otra vez")
        assert not any(item.new for item in again)  # same content: nothing new
        standards = directory / "standards.yaml"
        text = standards.read_text()
        edited = text.replace("threshold: 60", "threshold: 65", 1)
        assert edited != text
        standards.write_text(edited)
        with pytest.raises(CatalogueError, match="already published with other content"):
            publish(conn, load_catalogues(directory), "Luis Rojas (SGP)", "umbral de puntualidad")
        version = load_catalogues(directory).versions["standards"]
        standards.write_text(edited.replace(f'version: "{version}"', 'version: "2099.1"', 1))
        bumped = publish(conn, load_catalogues(directory), "Luis Rojas (SGP)", "umbral 65")
        assert [i.version for i in bumped if i.new] == ["2099.1"]
        versions = [(i.version, i.author) for i in history(conn, "standards")]
        assert versions == [("2099.1", "Luis Rojas (SGP)"), (version, "Ana Quispe (SGP)")]
        (stored,) = conn.execute(
            "SELECT content FROM catalogue_versions WHERE catalogue = 'standards' AND version = %s",
            (version,),
        ).fetchone() or (None,)
        assert stored == text  # the published content, exactly


def test_the_cli_validates_before_publishing_and_needs_author_and_note(tmp_path: Path) -> None:
    directory = tmp_path / "catalogues"
    shutil.copytree(SHIPPED, directory)
    broken = directory / "kpis.yaml"
    broken.write_text(broken.read_text().replace("unit: percent", "unit: porcentaje", 1))
    with isolated("catalogues") as settings:
        env = {**os.environ, "PCM_POSTGRES_DATABASE": settings.postgres_database}
        command = [sys.executable, "-m", "pcm_common.catalogues.cli", "publish", "--dir"]
        refused = subprocess.run(
            [*command, str(directory), "--author", "A", "--note", "n"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert refused.returncode == 2 and "kpis.yaml" in refused.stderr
        missing = subprocess.run(
            [*command, str(SHIPPED), "--author", "A"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert missing.returncode == 2 and "--note" in missing.stderr
        with connect(settings) as conn:
            (count,) = conn.execute("SELECT count(*) FROM catalogue_versions").fetchone() or (0,)
        assert count == 0
