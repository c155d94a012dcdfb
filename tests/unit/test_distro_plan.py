"""Which repositories a distribution has and where each package of a build goes."""

from artifacts.distro_plan import (
    Package,
    PlatformArches,
    distro_repo_name,
    planned_repositories,
    units_by_repository,
    without,
)

DISTRO = "almalinux-8.5"


def test_names_follow_the_reference() -> None:
    assert distro_repo_name(DISTRO, "AlmaLinux-8", "x86_64", debug=False) == (
        "almalinux-8.5-AlmaLinux-8-x86_64-dr"
    )
    assert distro_repo_name(DISTRO, "AlmaLinux-8", "x86_64", debug=True) == (
        "almalinux-8.5-AlmaLinux-8-x86_64-debug-dr"
    )


def test_each_platform_gets_src_each_arch_and_a_debug_repo_per_arch() -> None:
    planned = planned_repositories(
        DISTRO,
        [PlatformArches("P8", ["x86_64", "i686", "x86_64"]), PlatformArches("P9", ["aarch64"])],
    )
    assert [(r.name, r.arch, r.debug) for r in planned] == [
        (f"{DISTRO}-P8-src-dr", "src", False),
        (f"{DISTRO}-P8-x86_64-dr", "x86_64", False),
        (f"{DISTRO}-P8-i686-dr", "i686", False),
        (f"{DISTRO}-P8-x86_64-debug-dr", "x86_64", True),
        (f"{DISTRO}-P8-i686-debug-dr", "i686", True),
        (f"{DISTRO}-P9-src-dr", "src", False),
        (f"{DISTRO}-P9-aarch64-dr", "aarch64", False),
        (f"{DISTRO}-P9-aarch64-debug-dr", "aarch64", True),
    ]


def package(file_name: str, href: str, platform: str = "P8", arch: str = "x86_64") -> Package:
    return Package(platform, arch, file_name, href)


def test_sources_go_to_src_debug_packages_to_debug_others_to_their_task_arch() -> None:
    repos = [r.name for r in planned_repositories(DISTRO, [PlatformArches("P8", ["x86_64"])])]
    packages = [
        package("hello-1.0-1.el8.src.rpm", "/src"),
        package("hello-1.0-1.el8.x86_64.rpm", "/bin"),
        package("hello-data-1.0-1.el8.noarch.rpm", "/noarch"),
        package("hello-debuginfo-1.0-1.el8.x86_64.rpm", "/dbg"),
        package("hello-debugsource-1.0-1.el8.x86_64.rpm", "/dbgsrc"),
    ]
    assert units_by_repository(DISTRO, packages, repos) == {
        f"{DISTRO}-P8-src-dr": {"/src"},
        f"{DISTRO}-P8-x86_64-dr": {"/bin", "/noarch"},
        f"{DISTRO}-P8-x86_64-debug-dr": {"/dbg", "/dbgsrc"},
    }


def test_platforms_and_arches_the_distribution_lacks_are_left_out() -> None:
    repos = [r.name for r in planned_repositories(DISTRO, [PlatformArches("P8", ["x86_64"])])]
    packages = [
        package("hello-1.0-1.el8.i686.rpm", "/i686", arch="i686"),
        package("hello-1.0-1.el9.x86_64.rpm", "/p9", platform="P9"),
        package("hello-1.0-1.el9.src.rpm", "/p9src", platform="P9"),
    ]
    assert units_by_repository(DISTRO, packages, repos) == {}


def test_units_other_builds_still_need_are_kept() -> None:
    mine = {"a": {"/1", "/2"}, "b": {"/3"}}
    assert without(mine, {"a": {"/2"}, "b": {"/3"}, "c": {"/4"}}) == {"a": {"/1"}}
    assert without(mine, {}) == mine
