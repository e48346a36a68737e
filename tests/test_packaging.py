"""Packaging: the shipped configs and what names them, the declared dependencies, type checking of the public API,
and an install from a wheel that runs from any directory."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graphdiff.cli import main
from graphdiff.configs import HERE, resolve_config, shipped_configs
from graphdiff.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "graphdiff"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# ---------------------------------------------------------------------------------------------------- shipped configs
def test_configs_live_in_the_package_and_the_top_level_folder_is_a_link_to_them() -> None:
    assert HERE == PACKAGE / "configs"
    assert (REPO / "configs").is_symlink() and (REPO / "configs").resolve() == HERE
    names = set(shipped_configs())
    assert "quickstart" in names and {"discrete/qm9", "discrete/comm20", "sde/qm9", "sde/community_small"} <= names
    assert all(path.is_file() and path.suffix == ".yaml" for path in shipped_configs().values())


@pytest.mark.parametrize(("name", "expected"), [
    ("qm9", "discrete/qm9.yaml"),
    ("qm9.yaml", "discrete/qm9.yaml"),
    ("discrete/qm9", "discrete/qm9.yaml"),
    ("sde/qm9", "sde/qm9.yaml"),
    ("sde/qm9.yaml", "sde/qm9.yaml"),
    ("quickstart", "quickstart.yaml"),
    ("comm20", "discrete/comm20.yaml"),
])
def test_a_name_resolves_to_a_shipped_config(name: str, expected: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # from any directory
    assert resolve_config(name) == HERE / expected


def test_a_path_is_taken_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "qm9.yaml"  # an existing file wins over the shipped config of the same name
    mine.write_text("seed_everything: 1\n")
    assert resolve_config(str(mine)) == mine
    monkeypatch.chdir(tmp_path)
    assert resolve_config("qm9.yaml") == Path("qm9.yaml")
    assert resolve_config("qm9") == HERE / "discrete" / "qm9.yaml"
    monkeypatch.chdir(REPO)  # the documented paths, from the repository root
    assert resolve_config("configs/discrete/qm9.yaml").resolve() == HERE / "discrete" / "qm9.yaml"


@pytest.mark.parametrize("name", ["qm10", "sde/planar", "../configs/discrete/qm9", "nowhere/comm20.yaml", ""])
def test_an_unknown_name_is_a_one_line_error_listing_the_shipped_names(name: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        resolve_config(name)
    text = str(err.value)
    assert "\n" not in text and f"--config {name}:" in text
    for listed in ("quickstart", "comm20", "qm9", "sde/qm9", "sde/community_small"):
        assert re.search(rf"(?:: |, ){re.escape(listed)}(?:,| \()", text), (listed, text)


def test_fit_and_quickstart_take_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", "sde/community_small", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["dataset"] == "community_small" and printed["model"]["class_path"].endswith("ScoreSDEModel")
    assert main(["fit", "--config=qm10", "--print_config"]) == 2
    assert main(["quickstart", "--config", "qm10", "--output", str(tmp_path / "qs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("graphdiff: error: --config qm10: ") for line in err)
    assert not (tmp_path / "qs").exists()


# -------------------------------------------------------------------------------------------------------- packaging
def test_every_imported_third_party_package_is_declared() -> None:
    declared = {_normal(re.match(r"[A-Za-z0-9_.-]+", req).group(0)) for req in _pyproject()["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"graphdiff", "__future__"}
    missing = {m: providers.get(m) for m in third_party if not {_normal(d) for d in providers.get(m, [])} & declared}
    assert not missing, f"imported by graphdiff but not in [project] dependencies: {missing}"


def test_the_package_data_and_the_license_are_declared() -> None:
    project = _pyproject()
    assert project["project"]["license-files"] == ["LICENSE"] and "MIT License" in (REPO / "LICENSE").read_text()
    data = project["tool"]["setuptools"]["package-data"]
    assert (PACKAGE / "py.typed").is_file() and "py.typed" in data["graphdiff"]
    shipped = {p for pattern in data["graphdiff.configs"] for p in HERE.glob(pattern)}
    assert shipped == set(HERE.rglob("*.yaml"))
    lightning = [r for r in project["project"]["dependencies"] if r.startswith("pytorch-lightning")]
    assert lightning == ["pytorch-lightning>=2.6"]  # graphdiff.callbacks uses WeightAveraging (Lightning 2.6)


def test_the_public_api_type_checks() -> None:
    """``mypy`` with the ``[tool.mypy]`` settings of pyproject.toml: the public API modules, with the modules they
    import read but not reported."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    files = _pyproject()["tool"]["mypy"]["files"]
    for module in ("api", "errors", "types", "storage", "info", "log", "outputs", "io", "configs/__init__"):
        assert f"graphdiff/{module}.py" in files
    if (PACKAGE / "pipeline.py").exists():
        assert "graphdiff/pipeline.py" in files
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"graphdiff-mypy-cache-{os.getuid()}"
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------------------------------------ wheel
def test_a_wheel_install_runs_from_any_directory(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources, install it into a fresh virtual environment that reuses this one's
    dependencies (nothing downloaded), and run the command from a directory without any config.

    The fresh environment sees this interpreter's site-packages through a ``.pth`` file, not through
    ``--system-site-packages``: the dependencies usually live in the project's own venv, which that option does not
    reach, and the base interpreter's (or ``ensurepip``'s) older setuptools would shadow the one pyproject.toml needs.
    """
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "graphdiff", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    Path(venv_site, "graphdiff-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # pip and setuptools come from this environment: --no-build-isolation, --no-index and --no-deps ask no index.
    installed = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                                str(source)], cwd=tmp_path, timeout=600, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "GRAPHDIFF_ROOT": str(work / "data"), "PYTHONPATH": ""}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(str(python), "-c", "import graphdiff, graphdiff.configs as c; print(graphdiff.__file__); "
                                   "print(len(c.shipped_configs()))")
    assert where.returncode == 0, where.stderr
    location, count = where.stdout.split()
    assert Path(location).is_relative_to(venv_site), location  # the wheel's copy, not the source tree
    assert int(count) == len(list(HERE.rglob("*.yaml")))
    assert Path(venv_site, "graphdiff", "py.typed").is_file()
    dist = next(Path(venv_site).glob("graphdiff-*.dist-info"))
    assert "MIT License" in next(dist.rglob("LICENSE")).read_text()

    command = venv / "bin" / "graphdiff"
    helped = run(str(command), "quickstart", "--help")
    assert helped.returncode == 0 and "--config" in helped.stdout and "quickstart" in helped.stdout, helped.stderr
    printed = run(str(command), "fit", "--config", "comm20", "--print_config")
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    assert config["data"]["dataset"] == "comm20"
    assert config["model"]["class_path"].startswith("graphdiff.")
    assert not any(work.iterdir()), list(work.iterdir())  # --print_config wrote nothing
