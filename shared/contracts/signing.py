"""Sign keys, sign tasks and the Sign Node protocol (SIGNING.md §1), with their messages."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from shared.contracts.base import WireModel
from shared.contracts.bounds import LIST_MAX, DbId, Href, Name, Url, clean_text
from shared.contracts.messages import Actor, Event, RpcSpec

LONG_TEXT_MAX = 20_000  # a node's traceback; the escaped worst case stays below the body limit
HEX = re.compile(r"^[0-9A-Fa-f]+$")


def _hex(value: str) -> str:
    if not HEX.match(value):
        raise ValueError("must be hexadecimal digits (as gpg --list-keys --keyid-format long)")
    return value.upper()


KeyId = Annotated[str, StringConstraints(min_length=16, max_length=16), AfterValidator(_hex)]
Fingerprint = Annotated[str, StringConstraints(min_length=40, max_length=40), AfterValidator(_hex)]
# What a node offers: matched exactly, so an unknown or oddly cased id simply matches nothing.
OfferedKeyId = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(clean_text)
]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(clean_text)]
LongText = Annotated[str, StringConstraints(max_length=LONG_TEXT_MAX), AfterValidator(clean_text)]
PackageText = Annotated[str, StringConstraints(max_length=1024), AfterValidator(clean_text)]


def keyid_matches(keyid: str, fingerprint: str) -> bool:
    """The long key id is the fingerprint's last 16 hex digits (OpenPGP v4)."""
    return fingerprint.upper().endswith(keyid.upper())


class SignKeyCreate(WireModel):
    name: Name
    description: Description = ""
    keyid: KeyId
    fingerprint: Fingerprint
    public_url: Url


class SignKeyUpdate(WireModel):
    name: Name | None = None
    description: Description | None = None
    keyid: KeyId | None = None
    fingerprint: Fingerprint | None = None
    public_url: Url | None = None


class SignKeyOut(WireModel):
    """The original's shape: the fingerprint is not shown."""

    id: int
    name: str
    description: str
    keyid: str
    public_url: str
    inserted: datetime


class SignTaskCreate(WireModel):
    build_id: DbId
    sign_key_id: DbId


class SignTaskOut(WireModel):
    id: int
    build_id: int
    sign_key: SignKeyOut
    status: int
    error_message: str | None
    log_href: str | None


class GetSignTaskRequest(WireModel):
    key_ids: list[OfferedKeyId] = Field(max_length=LIST_MAX)


class SignPackageOut(WireModel):
    id: int
    name: str
    arch: str
    type: str
    download_url: str


class FrozenPackage(SignPackageOut):
    """A package entry as the task keeps it: also which build artifacts (rows with the same
    file in the same repository) it stands for, and that repository."""

    artifact_ids: list[int]
    repository_id: int

    def for_node(self) -> SignPackageOut:
        return SignPackageOut.model_validate(
            self.model_dump(include=set(SignPackageOut.model_fields))
        )


class AvailableSignTask(WireModel):
    id: int
    build_id: int
    keyid: str
    packages: list[SignPackageOut]


class ClaimedSignTask(WireModel):
    """The RPC's answer: the task, or None when nothing waits (the node then gets `{}`)."""

    task: AvailableSignTask | None


class CompletedPackage(WireModel):
    id: DbId
    name: PackageText = ""
    arch: PackageText | None = None
    type: PackageText = "rpm"
    href: Href


class SignTaskComplete(WireModel):
    build_id: DbId
    success: bool
    error_message: LongText | None = None
    log_href: PackageText | None = None
    packages: list[CompletedPackage] | None = Field(default=None, max_length=LIST_MAX)


class CompleteReply(WireModel):
    success: bool


class CreateSignKey(WireModel):
    actor: Actor
    key: SignKeyCreate


class UpdateSignKey(WireModel):
    actor: Actor
    key_id: int
    changes: SignKeyUpdate


class CreateSignTask(WireModel):
    actor: Actor
    request: SignTaskCreate


class ClaimSignTask(WireModel):
    actor: Actor
    key_ids: list[str]


class CompleteSignTask(WireModel):
    actor: Actor
    task_id: int
    report: SignTaskComplete


class CancelSignTask(WireModel):
    actor: Actor
    task_id: int


CREATE_SIGN_KEY = RpcSpec("signing.create_key", CreateSignKey, SignKeyOut)
UPDATE_SIGN_KEY = RpcSpec("signing.update_key", UpdateSignKey, SignKeyOut)
CREATE_SIGN_TASK = RpcSpec("signing.create_task", CreateSignTask, SignTaskOut)
GET_SIGN_TASK = RpcSpec("signing.get_sign_task", ClaimSignTask, ClaimedSignTask)
COMPLETE_SIGN_TASK = RpcSpec("signing.complete", CompleteSignTask, CompleteReply)
CANCEL_SIGN_TASK = RpcSpec("signing.cancel", CancelSignTask, SignTaskOut)


class SignTaskCreated(Event):
    routing_key = "sign_task.created"
    task_id: int
    build_id: int
    sign_key_id: int


class SignTaskAssigned(Event):
    routing_key = "sign_task.assigned"
    task_id: int
    build_id: int
    attempt: int
    node_id: str | None


class SignTaskRequeued(Event):
    routing_key = "sign_task.requeued"
    task_id: int
    build_id: int
    attempt: int
    node_id: str | None


class SignedPackage(WireModel):
    artifact_ids: list[int]
    name: str
    repository_id: int
    artifact_href: str


class SignTaskSigned(Event):
    """The node reported signed files: the artifacts service swaps them into the repositories."""

    routing_key = "sign_task.signed"
    task_id: int
    build_id: int
    attempt: int
    packages: list[SignedPackage]
    # The task's key: every signed file must carry a signature by it (SIGNING.md §5.12).
    keyid: str = ""
    fingerprint: str = ""


class SignTaskPackagesReplaced(Event):
    """The signed packages are in the build's repositories (or could not be: `error`)."""

    routing_key = "sign_task.packages_replaced"
    task_id: int
    build_id: int
    attempt: int
    error: str | None = None


class SignTaskCompleted(Event):
    routing_key = "sign_task.completed"
    task_id: int
    build_id: int
    attempt: int


class SignTaskFailed(Event):
    routing_key = "sign_task.failed"
    task_id: int
    build_id: int
    attempt: int
    error: str
