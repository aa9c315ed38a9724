"""Release check: ``python -m build`` makes an sdist and, from it, a wheel; the wheel
installs into a fresh virtual environment with its package data and a working CLI.

Fast on purpose (~20 s): the wheel goes in with ``--no-deps`` and the fresh venv sees
the dependencies through a .pth line to this interpreter's site-packages, which adds
the directory to ``sys.path`` without running its .pth hooks — so the editable install
of this checkout stays invisible and every ``fedpsyau_jax`` import comes from the wheel.
The build runs ``--no-isolation`` (this environment's setuptools, no download).
"""

import json
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT)
    (sdist,) = out.glob("fedpsyau_jax-*.tar.gz")
    (wheel,) = out.glob("fedpsyau_jax-*.whl")
    return sdist, wheel


def test_sdist_and_wheel_carry_the_package_data(dist):
    sdist, wheel = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fedpsyau_jax/data/reference_D.csv" in names
    assert {"fedpsyau_jax/cli/main.py", "fedpsyau_jax/model_card.py", "data_pipelines/readers/casme2.py"} <= names
    assert not any(n.startswith(("tests/", "configs/", "docs/")) for n in names)
    src = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"configs/synthetic_demo.py", "CITATION.cff", "CHANGELOG.md", "fedpsyau_jax/data/reference_D.csv"} <= src


def test_wheel_installs_in_a_fresh_venv_with_working_cli(dist, tmp_path):
    _, wheel = dist
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"  # not the checkout: nothing may come from the source tree
    work.mkdir()
    help_text = _run([env_dir / "bin" / "fedpsyau", "--help"], cwd=work)
    assert "train" in help_text and "predict" in help_text and "federate" in help_text
    version = _run([env_dir / "bin" / "fedpsyau", "--version"], cwd=work).strip()
    from fedpsyau_jax.version import package_version

    assert version == f"fedpsyau {package_version()}"
    code = (
        "import json, fedpsyau_jax; from fedpsyau_jax.network.priors import reference_prior; "
        "print(json.dumps([fedpsyau_jax.__file__, reference_prior().tolist()]))"
    )
    where, prior = json.loads(_run([py, "-c", code], cwd=work))
    from fedpsyau_jax.network.priors import reference_prior

    assert prior == reference_prior().tolist()  # the CSV shipped in the wheel, read through importlib.resources
    assert Path(where).is_relative_to(env_dir), where
    summary = _run([env_dir / "bin" / "fedpsyau", "data", "summary", "synthetic"], cwd=work)
    assert "datasets: synthetic=" in summary
