"""Names of a build's Pulp repositories and RPM file names: shared with the scheduler,
which names the same repositories when it lists a build's packages for signing."""

from shared.rpm_names import (
    DEBUG_SUFFIXES,
    LOG_BASE_PATH,
    RPM_BASE_PATH,
    SOURCE_ARCHES,
    Nevra,
    debug_repo_name,
    log_repo_name,
    parse_rpm_file_name,
    rpm_repo_name,
)

__all__ = [
    "DEBUG_SUFFIXES",
    "LOG_BASE_PATH",
    "RPM_BASE_PATH",
    "SOURCE_ARCHES",
    "Nevra",
    "debug_repo_name",
    "log_repo_name",
    "parse_rpm_file_name",
    "rpm_repo_name",
]
