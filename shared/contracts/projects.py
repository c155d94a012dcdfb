"""Source projects from the Gitea cache (REFERENCE §5.9, CLIENTS §4)."""

from shared.contracts.base import WireModel


class Project(WireModel):
    name: str
    clone_url: str
    tags: list[str]
    branches: list[str]
