"""Signing's decisions over plain data: may a build be signed, which packages a task covers,
and what a node's report does (SIGNING.md §5)."""

import pytest

from scheduler.signing_rules import (
    BadReport,
    BuildForSigning,
    BuildRepo,
    CurrentRpm,
    TaskForCancel,
    TaskForCompletion,
    Verdict,
    cancel_message,
    download_url,
    judge_completion,
    plan_packages,
    refusal_to_cancel,
    refusal_to_sign,
)
from shared.contracts.signing import SignKeyCreate, SignTaskComplete, keyid_matches
from shared.db.models import SignTaskStatus
from shared.errors import Conflict

READY = BuildForSigning(
    finished=True, signed=False, has_task_in_flight=False, source_rpms=1, binary_rpms=2
)


def test_a_finished_unsigned_build_with_rpms_may_be_signed() -> None:
    assert refusal_to_sign(7, READY) is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"has_task_in_flight": True}, "already queued"),
        ({"signed": True}, "already signed"),
        ({"finished": False}, "has not finished"),
        ({"source_rpms": 0}, "no source and binary"),
        ({"binary_rpms": 0}, "no source and binary"),
    ],
)
def test_a_build_is_refused_with_the_reason(change: dict[str, object], words: str) -> None:
    build = BuildForSigning(**{**READY.__dict__, **change})
    refusal = refusal_to_sign(7, build)
    assert refusal is not None
    assert words in refusal


B = 42
REPOS = [
    BuildRepo(1, "AL8-src-42-br", "http://pulp/pulp/content/builds/AL8-src-42-br/"),
    BuildRepo(2, "AL8-x86_64-42-br", "http://pulp/pulp/content/builds/AL8-x86_64-42-br/"),
    BuildRepo(3, "AL8-x86_64-42-debug-br", "http://pulp/x/AL8-x86_64-42-debug-br/"),
    BuildRepo(4, "AL8-i686-42-br", "http://pulp/pulp/content/builds/AL8-i686-42-br/"),
    BuildRepo(5, "AL9-x86_64-42-br", "http://pulp/pulp/content/builds/AL9-x86_64-42-br/"),
]


def test_packages_list_sources_first_one_entry_per_file_and_repository() -> None:
    rpms = [
        CurrentRpm(10, "bash-4.4-1.el8.x86_64.rpm", "AL8", "x86_64"),
        CurrentRpm(11, "bash-4.4-1.el8.src.rpm", "AL8", "x86_64"),
        CurrentRpm(12, "bash-debuginfo-4.4-1.el8.x86_64.rpm", "AL8", "x86_64"),
        CurrentRpm(13, "bash-doc-4.4-1.el8.noarch.rpm", "AL8", "x86_64"),
        CurrentRpm(20, "bash-4.4-1.el8.i686.rpm", "AL8", "i686"),
        CurrentRpm(21, "bash-4.4-1.el8.src.rpm", "AL8", "i686"),
        CurrentRpm(22, "bash-doc-4.4-1.el8.noarch.rpm", "AL8", "i686"),
    ]
    planned = plan_packages(B, rpms, REPOS)
    assert [(p.id, p.arch, p.repository_id, p.artifact_ids) for p in planned] == [
        (11, "src", 1, [11, 21]),  # one src.rpm file, reported by both arch tasks
        (10, "x86_64", 2, [10]),
        (12, "x86_64", 3, [12]),
        (13, "x86_64", 2, [13]),  # noarch: the arch of the task that built it
        (20, "i686", 4, [20]),
        (22, "i686", 4, [22]),
    ]
    assert planned[2].download_url == (
        "http://pulp/x/AL8-x86_64-42-debug-br/Packages/b/bash-debuginfo-4.4-1.el8.x86_64.rpm"
    )
    assert all(p.type == "rpm" for p in planned)
    assert len({p.id for p in planned}) == len(planned)


def test_each_platform_uses_its_own_repository() -> None:
    rpms = [
        CurrentRpm(1, "a-1-1.el8.x86_64.rpm", "AL8", "x86_64"),
        CurrentRpm(2, "a-1-1.el9.x86_64.rpm", "AL9", "x86_64"),
    ]
    assert [p.repository_id for p in plan_packages(B, rpms, REPOS)] == [2, 5]


def test_an_rpm_whose_repository_is_gone_is_not_listed() -> None:
    assert plan_packages(B, [CurrentRpm(1, "a-1-1.el8.ppc64le.rpm", "AL8", "ppc64le")], REPOS) == []


def test_download_urls_use_the_lower_case_directory() -> None:
    assert download_url("http://p/r/", "NetworkManager-1-1.x86_64.rpm") == (
        "http://p/r/Packages/n/NetworkManager-1-1.x86_64.rpm"
    )
    assert download_url("http://p/r", "a.rpm") == "http://p/r/Packages/a/a.rpm"


HELD = TaskForCompletion(
    task_id=5,
    build_id=B,
    status=SignTaskStatus.IN_PROGRESS,
    node_id="signer",
    package_ids=frozenset({11, 10}),
    accepted=None,
)


def report(
    success: bool = True, hrefs: dict[str, str] | None = None, **more: str
) -> SignTaskComplete:
    hrefs = {**(hrefs or {}), **more}
    packages = [{"id": int(k[1:]), "href": v} for k, v in hrefs.items()]
    return SignTaskComplete.model_validate(
        {"build_id": B, "success": success, "packages": packages if success else None}
    )


SIGNED = report(p11="/pulp/api/v3/artifacts/a/", p10="/pulp/api/v3/artifacts/b/")


def test_the_holder_s_first_report_is_taken() -> None:
    assert judge_completion(HELD, "signer", SIGNED) == Verdict.SUCCEEDED
    assert judge_completion(HELD, "signer", report(False)) == Verdict.FAILED


def test_a_repeat_of_the_taken_report_answers_alike_and_another_one_conflicts() -> None:
    done = TaskForCompletion(
        **{
            **HELD.__dict__,
            "accepted": {11: "/pulp/api/v3/artifacts/a/", 10: "/pulp/api/v3/artifacts/b/"},
        }
    )
    assert judge_completion(done, "signer", SIGNED) == Verdict.REPEATED
    for status in (SignTaskStatus.COMPLETED, SignTaskStatus.FAILED):
        finished = TaskForCompletion(**{**done.__dict__, "status": status})
        assert judge_completion(finished, "signer", SIGNED) == Verdict.REPEATED
        with pytest.raises(Conflict):
            judge_completion(finished, "signer", report(False))
    failed = TaskForCompletion(**{**HELD.__dict__, "status": SignTaskStatus.FAILED, "accepted": {}})
    assert judge_completion(failed, "signer", report(False)) == Verdict.REPEATED
    with pytest.raises(Conflict):
        judge_completion(failed, "signer", SIGNED)


def test_only_the_holder_of_a_live_claim_may_report() -> None:
    with pytest.raises(Conflict, match="not held by other"):
        judge_completion(HELD, "other", SIGNED)
    requeued = TaskForCompletion(**{**HELD.__dict__, "status": SignTaskStatus.IDLE})
    with pytest.raises(Conflict, match="lease ran out"):
        judge_completion(requeued, "signer", SIGNED)
    never = TaskForCompletion(**{**HELD.__dict__, "status": SignTaskStatus.IDLE, "node_id": None})
    with pytest.raises(Conflict):
        judge_completion(never, "signer", SIGNED)


def test_after_a_cancel_the_holder_s_success_conflicts_and_its_failure_changes_nothing() -> None:
    canceled = TaskForCompletion(
        **{**HELD.__dict__, "status": SignTaskStatus.FAILED, "canceled_by": "alice"}
    )
    with pytest.raises(Conflict, match="canceled by alice"):
        judge_completion(canceled, "signer", SIGNED)
    # The real node's follow-up failure report: answered alike, so the node keeps running.
    assert judge_completion(canceled, "signer", report(False)) == Verdict.REPEATED
    with pytest.raises(Conflict, match="not held by other"):
        judge_completion(canceled, "other", report(False))
    unclaimed = TaskForCompletion(**{**canceled.__dict__, "node_id": None})
    with pytest.raises(Conflict, match="not held"):
        judge_completion(unclaimed, "signer", report(False))


@pytest.mark.parametrize("status", [SignTaskStatus.IDLE, SignTaskStatus.IN_PROGRESS])
def test_a_waiting_or_claimed_task_may_be_canceled(status: SignTaskStatus) -> None:
    assert refusal_to_cancel(TaskForCancel(5, status, report_taken=False)) is None


@pytest.mark.parametrize(
    ("status", "report_taken", "words"),
    [
        (SignTaskStatus.COMPLETED, True, "already finished"),
        (SignTaskStatus.FAILED, False, "already finished"),
        (SignTaskStatus.FAILED, True, "already finished"),
        (SignTaskStatus.IN_PROGRESS, True, "being put in place"),
    ],
)
def test_a_finished_task_or_one_being_put_in_place_cannot_be_canceled(
    status: SignTaskStatus, report_taken: bool, words: str
) -> None:
    refusal = refusal_to_cancel(TaskForCancel(5, status, report_taken))
    assert refusal is not None
    assert words in refusal
    assert "Sign task 5" in refusal


def test_the_cancel_message_names_who_canceled() -> None:
    assert cancel_message("alice") == "Canceled by alice."


def test_the_task_s_build_counts_not_the_body_s() -> None:
    other_build = SignTaskComplete.model_validate({**SIGNED.model_dump(), "build_id": B + 1})
    with pytest.raises(Conflict, match="signs build 42"):
        judge_completion(HELD, "signer", other_build)


@pytest.mark.parametrize(
    ("hrefs", "words"),
    [
        ({"p11": "/a/", "p10": "/b/", "p99": "/c/"}, "no packages with ids \\[99\\]"),
        ({"p11": "/a/"}, "no signed file for packages \\[10\\]"),
        ({}, "no signed file for packages \\[10, 11\\]"),
    ],
)
def test_a_success_must_sign_exactly_the_task_s_packages(hrefs: dict[str, str], words: str) -> None:
    with pytest.raises(BadReport, match=words):
        judge_completion(HELD, "signer", report(hrefs=hrefs))


def test_key_ids_are_stored_upper_case_and_must_end_the_fingerprint() -> None:
    key = SignKeyCreate(
        name="k",
        keyid="0123456789abcdef",
        fingerprint="aaaaaaaaaaaaaaaaaaaaaaaa0123456789ABCDEF",
        public_url="http://keys/k.asc",
    )
    assert key.keyid == "0123456789ABCDEF"
    assert key.fingerprint.endswith("0123456789ABCDEF")
    assert keyid_matches(key.keyid, key.fingerprint)
    assert not keyid_matches("FFFFFFFFFFFFFFFF", key.fingerprint)
    with pytest.raises(ValueError, match="hexadecimal"):
        SignKeyCreate(
            name="k", keyid="XYZ0123456789ABC", fingerprint="0" * 40, public_url="http://k"
        )
