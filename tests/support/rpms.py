"""Tiny real RPM packages for tests, built with rpmbuild (Debian package `rpm`).

One spec yields the four kinds a build node uploads: the source RPM, an arch binary,
a noarch subpackage and a -debuginfo package. Nothing is compiled, so any target arch
builds on any host in well under a second.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SPEC = """\
%global debug_package %{{nil}}
Name: {name}
Version: {version}
Release: {release}
Summary: A tiny package for the ALBS control plane tests
License: MIT

%description
A tiny package built by the test suite.

%package data
Summary: Architecture-independent data of {name}
BuildArch: noarch

%description data
Noarch subpackage.

%package debuginfo
Summary: Debug information of {name}

%description debuginfo
Debuginfo subpackage.

%install
mkdir -p %{{buildroot}}/usr/share/{name} %{{buildroot}}/usr/lib/debug/{name}
echo "{name} {version}-{release} %{{_target_cpu}}" > %{{buildroot}}/usr/share/{name}/binary.txt
echo "{name} data" > %{{buildroot}}/usr/share/{name}/data.txt
echo "{name} debug" > %{{buildroot}}/usr/lib/debug/{name}/debug.txt

%files
/usr/share/{name}/binary.txt

%files data
/usr/share/{name}/data.txt

%files debuginfo
/usr/lib/debug/{name}/debug.txt
"""


@dataclass(frozen=True)
class RpmSet:
    """The packages of one build of the test spec."""

    src: Path
    binary: Path
    noarch: Path
    debuginfo: Path

    @property
    def all(self) -> list[Path]:
        return [self.src, self.binary, self.noarch, self.debuginfo]


def rpmbuild_path() -> str:
    """The rpmbuild executable, or a clear failure naming the package that provides it."""
    found = shutil.which("rpmbuild")
    if found is None:
        pytest.fail(
            "rpmbuild is not installed; install it with `apt-get install -y rpm`", pytrace=False
        )
    return found


def build_rpm_set(
    workdir: Path,
    *,
    name: str = "albs-hello",
    version: str = "1.0",
    release: str = "1",
    arch: str = "x86_64",
) -> RpmSet:
    """Build the test spec for `arch` under `workdir` and return the four package files."""
    topdir = workdir / f"{name}-{version}-{release}-{arch}"
    spec = topdir / "SPECS" / f"{name}.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC.format(name=name, version=version, release=release))
    command = [
        rpmbuild_path(),
        "-ba",
        "--quiet",
        "--target",
        arch,
        "--define",
        f"_topdir {topdir}",
        "--define",
        "_build_id_links none",
        str(spec),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rpmbuild failed ({result.returncode}):\n{result.stderr}")
    nvr = f"{version}-{release}"
    return RpmSet(
        src=topdir / "SRPMS" / f"{name}-{nvr}.src.rpm",
        binary=topdir / "RPMS" / arch / f"{name}-{nvr}.{arch}.rpm",
        noarch=topdir / "RPMS" / "noarch" / f"{name}-data-{nvr}.noarch.rpm",
        debuginfo=topdir / "RPMS" / arch / f"{name}-debuginfo-{nvr}.{arch}.rpm",
    )


class RpmFactory:
    """Builds each (name, version, release, arch) once per test session."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._built: dict[tuple[str, str, str, str], RpmSet] = {}

    def __call__(
        self,
        *,
        name: str = "albs-hello",
        version: str = "1.0",
        release: str = "1",
        arch: str = "x86_64",
    ) -> RpmSet:
        key = (name, version, release, arch)
        if key not in self._built:
            self._built[key] = build_rpm_set(
                self._workdir, name=name, version=version, release=release, arch=arch
            )
        return self._built[key]


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> RpmFactory:
    """`rpms(name=..., version=..., arch=...)` -> an RpmSet, built once per session."""
    return RpmFactory(tmp_path_factory.mktemp("rpms"))
