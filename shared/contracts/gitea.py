"""Gitea: the push webhook as it arrives over MQTT (CLIENTS §3), the API's repository, our events.

The webhook models are tolerant on purpose: only what the bridge acts on is required
(the ref and the repository's names and clone URL); every other field the Gitea listener
republishes is optional, so a listener that drops a field does not make us drop events.
"""

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.messages import Event

FULL_NAME_PATTERN = r"^[^/\s]+/[^/\s]+$"


class GiteaUser(WireModel):
    id: int = 0
    login: str = ""
    full_name: str = ""
    email: str = ""
    avatar_url: str = ""
    username: str = ""


class GiteaCommitUser(WireModel):
    name: str = ""
    email: str = ""
    username: str = ""


class GiteaCommit(WireModel):
    id: str
    message: str = ""
    url: str = ""
    author: GiteaCommitUser | None = None
    committer: GiteaCommitUser | None = None
    timestamp: datetime | None = None


class GiteaRepository(WireModel):
    """A repository as both the push webhook and `GET /orgs/{org}/repos` describe it."""

    id: int = 0
    owner: GiteaUser | None = None
    name: str = Field(min_length=1)
    full_name: str = Field(pattern=FULL_NAME_PATTERN)
    description: str | None = None
    private: bool = False
    fork: bool = False
    html_url: str = ""
    ssh_url: str = ""
    clone_url: str = Field(min_length=1)
    website: str | None = None
    stars_count: int = 0
    forks_count: int = 0
    watchers_count: int = 0
    open_issues_count: int = 0
    default_branch: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class GiteaPushEvent(WireModel):
    """Gitea's push webhook; a tag push is a push whose ref is `refs/tags/...`."""

    secret: str | None = Field(default=None, repr=False)
    ref: str = Field(min_length=1)
    before: str = ""
    after: str = ""
    compare_url: str = ""
    commits: list[GiteaCommit] = Field(default_factory=list)
    repository: GiteaRepository
    pusher: GiteaUser | None = None
    sender: GiteaUser | None = None


class GitRefChanged(Event):
    """A branch or tag of a Gitea repository was pushed or deleted (`deleted`: after is all zeros)."""

    full_name: str
    name: str
    clone_url: str
    ref: str
    before: str
    after: str
    deleted: bool
    pusher: str = ""


class BranchPushed(GitRefChanged):
    routing_key: ClassVar[str] = "gitea.push"

    branch: str
    commits: list[str] = Field(default_factory=list)


class TagPushed(GitRefChanged):
    routing_key: ClassVar[str] = "gitea.tag"

    tag: str
