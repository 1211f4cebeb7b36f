"""deploy/runtime_env.yaml's way of shipping code, without a cluster: a checkout that
nothing installed imports as ``storyline`` from its own files (storyline.py), ahead of the
installed package. The two-node test (slow) runs it on Ray."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_named_as_its_package() -> None:
    """storyline.py maps storyline.X to the folder X: pyproject.toml must agree."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for package, folder in pyproject["tool"]["setuptools"]["package-dir"].items():
        assert package == f"storyline.{folder}", (package, folder)


def test_runtime_env_ships_the_checkout_and_installs_nothing() -> None:
    env = yaml.safe_load((REPO / "deploy" / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "."
    assert not {"pip", "uv", "conda", "py_executable"} & env.keys(), "nothing per-node"


def test_a_checkout_on_the_path_is_the_storyline_that_runs(tmp_path: Path) -> None:
    """What a Ray worker sees: the job's working dir first on PYTHONPATH, the installed
    storyline behind it; the working dir's code wins, subpackages included."""
    shutil.copy2(REPO / "storyline.py", tmp_path / "storyline.py")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "__init__.py").write_text("SUBMITTED = 'this checkout'\n")
    shutil.copytree(REPO / "store", tmp_path / "store")
    probe = (
        "import storyline.deploy as d, storyline.store.jobs as j; "
        "print(d.SUBMITTED, d.__file__, j.__file__, sep='|')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd="/",
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    marker, deploy_file, jobs_file = done.stdout.strip().split("|")
    assert marker == "this checkout"
    assert Path(deploy_file).parent == tmp_path / "deploy"
    assert Path(jobs_file).parent == tmp_path / "store"
