"""The set-up files agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == declared
    assert "python=3.11" in env["dependencies"]


def test_makefile_installs_the_torch_pin_first():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"torch==2\.13\.0"', pyproject)
    makefile = (ROOT / "Makefile").read_text()
    torch_line = makefile.index('install --quiet "$(TORCH)"')
    assert torch_line < makefile.index('install --quiet -e ".[book,test]"')
