"""Which Pulp repositories a distribution has and which of them a package belongs in.

Pure functions over plain data (REFERENCE §5.7, fixing §11.19): a package goes to the
repository of its own platform and task arch, a source RPM to `src`, a debuginfo or
debugsource package to the debug repository of its arch.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from artifacts.naming import parse_rpm_file_name


@dataclass(frozen=True)
class DistroRepo:
    name: str
    arch: str
    debug: bool


@dataclass(frozen=True)
class PlatformArches:
    name: str
    arch_list: list[str]


@dataclass(frozen=True)
class Package:
    """An RPM filed for a build task, as Pulp content."""

    platform: str
    task_arch: str
    file_name: str
    content_href: str


def distro_repo_name(distribution: str, platform: str, arch: str, *, debug: bool) -> str:
    suffix = "-debug" if debug else ""
    return f"{distribution}-{platform}-{arch}{suffix}-dr"


def planned_repositories(
    distribution: str, platforms: Iterable[PlatformArches]
) -> list[DistroRepo]:
    """Per platform: `src` and each arch, plus a debug repository per arch (none for src)."""
    planned: dict[str, DistroRepo] = {}
    for platform in platforms:
        arches = list(dict.fromkeys(platform.arch_list))
        kinds = [("src", False)] + [(a, False) for a in arches] + [(a, True) for a in arches]
        for arch, debug in kinds:
            name = distro_repo_name(distribution, platform.name, arch, debug=debug)
            planned[name] = DistroRepo(name, arch, debug)
    return list(planned.values())


def repository_of(distribution: str, package: Package) -> str:
    """The name of the distribution repository the package belongs in."""
    nevra = parse_rpm_file_name(package.file_name)
    if nevra is not None and nevra.is_source:
        return distro_repo_name(distribution, package.platform, "src", debug=False)
    debug = nevra is not None and nevra.is_debug
    return distro_repo_name(distribution, package.platform, package.task_arch, debug=debug)


def units_by_repository(
    distribution: str, packages: Iterable[Package], repositories: Iterable[str]
) -> dict[str, set[str]]:
    """repository name -> content hrefs; packages of platforms or arches the distribution
    does not have are left out."""
    known = set(repositories)
    units: dict[str, set[str]] = defaultdict(set)
    for package in packages:
        repo = repository_of(distribution, package)
        if repo in known:
            units[repo].add(package.content_href)
    return dict(units)


def without(units: dict[str, set[str]], kept: dict[str, set[str]]) -> dict[str, set[str]]:
    """`units` minus what `kept` still needs in the same repository (another build's
    identical package must stay when one build leaves)."""
    left = {repo: hrefs - kept.get(repo, set()) for repo, hrefs in units.items()}
    return {repo: hrefs for repo, hrefs in left.items() if hrefs}
