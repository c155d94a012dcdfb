"""Names of a build's Pulp repositories (REFERENCE §5.1 step 6) and RPM file names."""

from dataclasses import dataclass

RPM_BASE_PATH = "builds"
LOG_BASE_PATH = "build_logs"
SOURCE_ARCHES = ("src", "nosrc")
DEBUG_SUFFIXES = ("-debuginfo", "-debugsource")


def rpm_repo_name(platform: str, arch: str, build_id: int) -> str:
    return f"{platform}-{arch}-{build_id}-br"


def debug_repo_name(platform: str, arch: str, build_id: int) -> str:
    return f"{platform}-{arch}-{build_id}-debug-br"


def log_repo_name(platform: str, arch: str, build_id: int, task_id: int) -> str:
    return f"{platform}-{arch}-{build_id}-artifacts-{task_id}"


@dataclass(frozen=True)
class Nevra:
    name: str
    epoch: str | None
    version: str
    release: str
    arch: str

    @property
    def is_source(self) -> bool:
        return self.arch in SOURCE_ARCHES

    @property
    def is_debug(self) -> bool:
        """A debuginfo/debugsource package (also kernel's `-debuginfo-common-<arch>`)."""
        return self.name.endswith(DEBUG_SUFFIXES) or "-debuginfo-common-" in self.name


def parse_rpm_file_name(file_name: str) -> Nevra | None:
    """`name-[epoch:]version-release.arch.rpm` -> its parts; None when it is not that shape."""
    if not file_name.endswith(".rpm"):
        return None
    stem, dot, arch = file_name.removesuffix(".rpm").rpartition(".")
    if not dot or not arch:
        return None
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    name, version, release = parts
    epoch: str | None = None
    if ":" in version:
        epoch, version = version.split(":", 1)
    return Nevra(name=name, epoch=epoch, version=version, release=release, arch=arch)
