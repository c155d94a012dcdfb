"""A simulated Sign Node speaking albs-sign-node's protocol (SIGNING.md §4) over HTTP.

It polls get_sign_task with its key ids, downloads each package from its content URL with
no credentials, signs the files with `rpmsign --resign` and a throwaway gpg key made for the
test, uploads each to Pulp as the node does (sha256 look-up, chunked PUTs, commit) and
reports the artifact hrefs to `complete`. Its Pulp client is the run's logged-in session
(the node sends basic auth; the requests are the same).
"""

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.pulp_node import sha256_of, upload_artifact

TASKS = "/api/v1/sign-tasks"


@dataclass(frozen=True)
class GpgKey:
    home: Path
    keyid: str
    fingerprint: str


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with `apt-get install -y {package}`")
    return found


def make_gpg_key(home: Path, name: str = "ALBS Test Signing") -> GpgKey:
    """A passphrase-less RSA signing key in a keyring of its own."""
    gpg = _tool("gpg", "gnupg")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            gpg,
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <sign@example.org>",
            "rsa2048",
            "sign",
            "never",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(
        [gpg, "--list-keys", "--with-colons"], env=env, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    keyid = next(line.split(":")[4] for line in listed if line.startswith("pub:"))
    fingerprint = next(line.split(":")[9] for line in listed if line.startswith("fpr:"))
    return GpgKey(home, keyid, fingerprint)


@contextlib.contextmanager
def gpg_keyring(home: Path, name: str = "ALBS Test Signing") -> Iterator[GpgKey]:
    """`make_gpg_key`, and the gpg-agent that signing starts for the keyring stopped after:
    each keyring would leave its own agent running past the test run."""
    key = make_gpg_key(home, name)
    try:
        yield key
    finally:
        subprocess.run(
            [_tool("gpgconf", "gnupg"), "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(home)},
            check=False,
            capture_output=True,
        )


def rpmsign(key: GpgKey, files: list[Path]) -> None:
    """What the node runs: `rpmsign --resign -D '_gpg_name <keyid>'` on every file at once."""
    command = [
        _tool("rpmsign", "rpm"),
        "--resign",
        "-D",
        f"_gpg_name {key.keyid}",
        "-D",
        f"_gpg_path {key.home}",
        "-D",
        f"__gpg {_tool('gpg', 'gnupg')}",
        *map(str, files),
    ]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"rpmsign failed: {result.stderr}")


def signature_key(path: Path) -> str:
    """The key id (lower-case, short) `rpm -K` names for the file's header signature."""
    out = subprocess.run(
        [_tool("rpm", "rpm"), "-Kv", str(path)], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        if "Signature, key ID" in line:
            return line.split("key ID", 1)[1].split(":", 1)[0].strip()
    return ""


class SignNode:
    def __init__(
        self,
        api: httpx.AsyncClient,
        headers: dict[str, str],
        pulp: httpx.AsyncClient,
        key: GpgKey,
        workdir: Path,
    ) -> None:
        self.api = api
        self.headers = headers
        self.pulp = pulp
        self.key = key
        self.workdir = workdir
        self.signed: dict[int, Path] = {}  # package id -> the signed file

    async def poll(self, key_ids: list[str] | None = None) -> dict[str, Any]:
        answer = await self.api.post(
            f"{TASKS}/get_sign_task/",
            json={"key_ids": key_ids if key_ids is not None else [self.key.keyid]},
            headers=self.headers,
        )
        assert answer.status_code == 200, answer.text
        task: dict[str, Any] = answer.json()
        return task

    async def sign(self, task: dict[str, Any]) -> dict[str, Any]:
        """Download, sign and upload every package; the success report for `complete`."""
        files: dict[int, Path] = {}
        async with httpx.AsyncClient(timeout=60, follow_redirects=True) as anonymous:
            for package in task["packages"]:
                target = self.workdir / str(task["id"]) / str(package["id"]) / package["name"]
                target.parent.mkdir(parents=True, exist_ok=True)
                answer = await anonymous.get(package["download_url"])
                assert answer.status_code == 200, f"{package['download_url']}: {answer.status_code}"
                target.write_bytes(answer.content)
                files[package["id"]] = target
        await asyncio.to_thread(rpmsign, self.key, list(files.values()))
        reported = []
        for package in task["packages"]:
            path = files[package["id"]]
            # A small chunk size sends even these tiny files in several Content-Range PUTs.
            href = await upload_artifact(self.pulp, path, chunk_size=4096)
            reported.append({**{k: v for k, v in package.items() if k != "download_url"}})
            reported[-1]["href"] = href
            self.signed[package["id"]] = path
        return {"build_id": task["build_id"], "success": True, "packages": reported}

    async def complete(self, task_id: int, report: dict[str, Any]) -> httpx.Response:
        return await self.api.post(
            f"{TASKS}/{task_id}/complete/", json=report, headers=self.headers
        )

    async def report(self, task_id: int, report: dict[str, Any]) -> list[httpx.Response]:
        """`complete` the way albs-sign-node sends it (SIGNING.md §4.6, §8): anything but a 200
        with a truthy JSON `success` makes it send a second, failing `complete`; if that one is
        refused too the node process exits. The answers, in order."""
        first = await self.complete(task_id, report)
        if first.status_code == 200 and first.json().get("success"):
            return [first]
        failure = {
            "build_id": report["build_id"],
            "success": False,
            "error_message": f"Signing failed: {first.status_code} {first.text[:200]}.\n"
            "Traceback: (simulated)",
        }
        return [first, await self.complete(task_id, failure)]

    def signed_checksums_of(self, package_id: int) -> str:
        return sha256_of(self.signed[package_id])

    def signed_checksums(self) -> set[str]:
        return {sha256_of(path) for path in self.signed.values()}
