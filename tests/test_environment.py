"""The environment files agree with each other and with the running interpreter.

requirements.txt + requirements-nodeps.txt are the source of truth; environment.yml (conda),
scripts/setup.sh (Debian packages) and README.md must name the same things.
"""

import importlib.metadata as md
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# conda-forge name -> PyPI name, where they differ (environment.yml explains each choice).
CONDA_TO_PYPI = {
    "pytorch-cpu": "torch",
    "matplotlib-base": "matplotlib",
}
# In environment.yml only: the interpreter, pip itself, and the OpenCL CPU device that Debian's
# pocl-opencl-icd provides outside conda.
CONDA_ONLY = {"python", "pip", "pocl"}


def read_pins(path: Path) -> dict[str, str]:
    """{canonical name: version} from a requirements file; every line must be an exact pin."""
    pins = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!]+)", line)
        assert m, f"{path.name}:{lineno}: expected an exact pin 'name==version'. Received: {raw!r}"
        name = canonicalize_name(m[1])
        assert name not in pins, f"{path.name}:{lineno}: {name} pinned twice"
        pins[name] = m[2]
    return pins


def read_conda_env(path: Path) -> tuple[dict[str, str | None], dict[str, str]]:
    """(conda packages as {PyPI name: version or None}, pip section as {name: version})."""
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge"], env["channels"]
    conda: dict[str, str | None] = {}
    pip: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected section in environment.yml: {dep}"
            for spec in dep["pip"]:
                name, _, version = spec.partition("==")
                pip[canonicalize_name(name)] = version
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(==?)\s*(\S+))?", dep)
        assert m, f"environment.yml: cannot parse dependency {dep!r}"
        name = m[1].lower()
        if name in CONDA_ONLY:
            continue
        conda[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = m[3] if m[2] == "==" else None
    return conda, pip


REQUIREMENTS = read_pins(ROOT / "requirements.txt")
NODEPS = read_pins(ROOT / "requirements-nodeps.txt")


def test_requirement_files_do_not_overlap():
    assert not set(REQUIREMENTS) & set(NODEPS)


def test_conda_env_names_the_same_pins():
    conda, pip = read_conda_env(ROOT / "environment.yml")
    assert conda == REQUIREMENTS, "environment.yml (conda part) and requirements.txt disagree"
    assert pip == NODEPS, "environment.yml (pip part) and requirements-nodeps.txt disagree"


def _installed_version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        pytest.fail(f"{name} is pinned but not installed; run `bash scripts/setup.sh`")


@pytest.mark.parametrize("name", sorted({**REQUIREMENTS, **NODEPS}))
def test_installed_version_matches_pin(name):
    pinned = {**REQUIREMENTS, **NODEPS}[name]
    # Local labels are the build flavour (torch 2.13.0+cpu satisfies ==2.13.0).
    installed = Version(_installed_version(name)).public
    assert installed == Version(pinned).public, (
        f"{name}: requirements pin {pinned}, the venv has {installed}; run `bash scripts/setup.sh`"
    )


def test_dependency_tree_keeps_the_cpu_torch():
    """Nothing reachable from requirements.txt asks for a torch that the pin does not satisfy
    (pip would replace the CPU wheel with a multi-GB CUDA build), nor for torchvision/torchaudio,
    which have no CPU build here. requirements-nodeps.txt is exempt: installed with --no-deps."""
    torch_pin = REQUIREMENTS["torch"]
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(name, frozenset()) for name in REQUIREMENTS]
    bad = []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue  # platform-specific dependency that is not installed here
        for spec in requires:
            req = Requirement(spec)
            envs = [{"extra": e} for e in extras or {""}]
            if req.marker and not any(req.marker.evaluate(env) for env in envs):
                continue
            dep = canonicalize_name(req.name)
            if dep == "torch" and not req.specifier.contains(torch_pin, prereleases=True):
                bad.append(f"{name} requires {spec}")
            if dep in ("torchvision", "torchaudio"):
                bad.append(f"{name} requires {spec}")
            todo.append((dep, frozenset(req.extras)))
    assert not bad, f"requirements.txt would replace torch=={torch_pin}: {bad}"


def _setup_debian_packages() -> set[str]:
    text = (ROOT / "scripts/setup.sh").read_text()
    m = re.search(r"^DEBIAN_PACKAGES=\((.*?)^\)", text, re.S | re.M)
    assert m, "scripts/setup.sh: DEBIAN_PACKAGES=( ... ) not found"
    return {word for line in m[1].splitlines() for word in line.split("#", 1)[0].split()}


def _readme_debian_packages() -> set[str]:
    # The bullet "- Debian packages ..." and its continuation lines, up to the "Not root?" sentence.
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^- Debian packages(.*?)(?:Not root\?|^- |^$)", readme, re.S | re.M)
    assert m, "README.md: no bullet starting with '- Debian packages'"
    return set(re.findall(r"`([a-z0-9][a-z0-9.+-]*)`", m[1]))


def test_setup_installs_the_debian_packages_the_readme_lists():
    readme, setup = _readme_debian_packages(), _setup_debian_packages()
    assert readme, "README.md lists no Debian package"
    assert readme == setup, (
        f"only in README.md: {sorted(readme - setup)}; only in scripts/setup.sh: {sorted(setup - readme)}"
    )
