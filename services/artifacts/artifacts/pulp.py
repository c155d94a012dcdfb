"""The Pulp primitives the artifacts service needs, each one idempotent step.

Every step finds by name or checksum first and creates only what is missing, so a retried
step or a redelivered event never creates a duplicate.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from artifacts.naming import LOG_BASE_PATH, RPM_BASE_PATH
from artifacts.pulp_api import API, Json, PulpApi, PulpError, RetryPolicy, TaskPolicy
from artifacts.settings import ArtifactsSettings

ARTIFACTS = f"{API}/artifacts/"
RPM_PACKAGES = f"{API}/content/rpm/packages/"
FILE_CONTENT = f"{API}/content/file/files/"
NEVRA = "pulp_href,name,epoch,version,release,arch"
PAGE = 100  # what one `_list` answers

__all__ = ["LOG_REPO", "RPM_REPO", "PulpClient", "PulpError", "PulpRepo", "RepoKind"]


@dataclass(frozen=True)
class RepoKind:
    plugin: str  # the `<plugin>/<type>` part of Pulp's endpoints
    base_path: str  # distributions serve `<base_path>/<repository name>/`

    @property
    def repositories(self) -> str:
        return f"{API}/repositories/{self.plugin}/"

    @property
    def publications(self) -> str:
        return f"{API}/publications/{self.plugin}/"

    @property
    def distributions(self) -> str:
        return f"{API}/distributions/{self.plugin}/"


RPM_REPO = RepoKind("rpm/rpm", RPM_BASE_PATH)
LOG_REPO = RepoKind("file/file", LOG_BASE_PATH)
REPO_KINDS = (RPM_REPO, LOG_REPO)


def _moved(distribution: Json, wanted: Json) -> str:
    """The base URL after a change of base path: Pulp's is `<origin><prefix><base path>/`."""
    base_url, base_path = str(distribution["base_url"]), str(distribution["base_path"])
    if not base_url.endswith(f"{base_path}/"):
        raise PulpError(f"distribution {distribution['pulp_href']} serves {base_url}")
    return f"{base_url.removesuffix(f'{base_path}/')}{wanted['base_path']}/"


@dataclass(frozen=True)
class PulpRepo:
    name: str
    href: str
    base_url: str  # where the distribution serves it


class PulpClient(PulpApi):
    @classmethod
    def from_settings(cls, settings: ArtifactsSettings) -> "PulpClient":
        return cls(
            settings.pulp_url,
            settings.pulp_user,
            settings.pulp_password.get_secret_value(),
            timeout_seconds=settings.pulp_timeout_seconds,
            retry=RetryPolicy(
                settings.pulp_retries,
                settings.pulp_retry_backoff_seconds,
                settings.pulp_retry_max_delay_seconds,
                settings.pulp_retry_deadline_seconds,
            ),
            tasks=TaskPolicy(settings.pulp_task_poll_seconds, settings.pulp_task_timeout_seconds),
            concurrency=settings.pulp_concurrency,
        )

    # Repositories

    async def ensure_repository(self, kind: RepoKind, name: str, *, publish: bool) -> PulpRepo:
        """The repository `name` (autopublish) and its distribution; `publish` also gives the
        empty repository a publication, for a repository read before anything is filed."""
        return await self._step(
            f"creating Pulp repository {name!r}",
            lambda: self._ensure_repository(kind, name, publish=publish),
        )

    async def create_repository(self, kind: RepoKind, name: str) -> str:
        """The repository `name` (autopublish), without its distribution; its href."""
        return await self._step(
            f"creating Pulp repository {name!r}",
            lambda: self._find_or_create_repository(kind, name),
        )

    async def ensure_distribution(self, kind: RepoKind, name: str, repo_href: str) -> str:
        """The distribution serving the repository `name`; its base URL."""
        return await self._step(
            f"distributing Pulp repository {name!r}",
            lambda: self._ensure_distribution(kind, name, repo_href),
        )

    async def adopt_repository(self, kind: RepoKind, repo_href: str, name: str) -> PulpRepo:
        """Give a warm pool's repository (and its distribution) the name `name` and the base
        path `<base_path>/<name>`: two updates Pulp runs in its API process, no worker task.
        A repository Pulp no longer has is a PulpError (a 404 is never retried)."""
        return await self._step(
            f"naming pooled Pulp repository {repo_href} {name!r}",
            lambda: self._adopt_repository(kind, repo_href, name),
        )

    async def delete_repository(self, repo_href: str) -> None:
        """Delete the repository and every distribution of it; already gone is fine."""
        href = self._own_path(repo_href, f"{API}/repositories/", "repository")
        await self._step(f"deleting Pulp repository {href}", lambda: self._delete_repository(href))

    async def delete_repository_named(self, kind: RepoKind, name: str) -> None:
        await self._step(
            f"deleting Pulp repository {name!r}", lambda: self._delete_repository_named(kind, name)
        )

    # Content

    async def artifact_checksums(self, names: dict[str, str]) -> dict[str, str]:
        """artifact href -> sha256 in one call, for {artifact href: file name}; an href that
        is not one of this Pulp's artifacts is an error naming the file."""
        paths = {}
        for href, name in names.items():
            try:
                paths[href] = self._own_path(href, ARTIFACTS, "artifact")
            except PulpError as exc:
                raise PulpError(f"importing {name!r}: {exc}") from exc
        wanted = ",".join(sorted(set(paths.values())))
        found = await self._step(
            f"reading {len(names)} Pulp artifact(s)",
            lambda: self._list(ARTIFACTS, pulp_href__in=wanted, fields="pulp_href,sha256"),
        )
        checksums = {a["pulp_href"]: a["sha256"] for a in found}
        for href, path in paths.items():
            if path not in checksums:
                raise PulpError(f"importing {names[href]!r} ({href}): Pulp has no artifact {path}")
        return {href: checksums[path] for href, path in paths.items()}

    async def packages_by_checksum(self, checksums: list[str]) -> dict[str, str]:
        """sha256 (an RPM's pkgId) -> href of the package content Pulp has already."""
        wanted = ",".join(sorted(set(checksums)))
        found = await self._step(
            "looking up RPM packages by pkgId",
            lambda: self._list(RPM_PACKAGES, pkgId__in=wanted, fields="pulp_href,pkgId"),
        )
        return {p["pkgId"]: p["pulp_href"] for p in found}

    async def package_nevras(self, content_hrefs: list[str]) -> dict[str, Json]:
        """content href -> the package's name, epoch, version, release and arch, as Pulp read
        them from its header (a file name has no epoch)."""
        wanted = sorted(set(content_hrefs))
        found: dict[str, Json] = {}
        for start in range(0, len(wanted), PAGE):
            chunk = ",".join(wanted[start : start + PAGE])
            rows = await self._step("reading the packages' NEVRA", self._nevra_reader(chunk))
            found.update((row["pulp_href"], row) for row in rows)
        return found

    def _nevra_reader(self, hrefs: str) -> Callable[[], Awaitable[list[Json]]]:
        return lambda: self._list(RPM_PACKAGES, pulp_href__in=hrefs, fields=NEVRA)

    async def signing_keys(self, content_hrefs: list[str]) -> dict[str, list[str] | None]:
        """content href -> the issuers of the package's signatures, as Pulp read them."""
        wanted = sorted(set(content_hrefs))
        found: dict[str, list[str] | None] = {}
        for start in range(0, len(wanted), PAGE):
            chunk = ",".join(wanted[start : start + PAGE])
            rows = await self._step("reading the packages' signatures", self._keys_reader(chunk))
            found.update((row["pulp_href"], row.get("signing_keys")) for row in rows)
        return found

    def _keys_reader(self, hrefs: str) -> Callable[[], Awaitable[list[Json]]]:
        return lambda: self._list(
            RPM_PACKAGES, pulp_href__in=hrefs, fields="pulp_href,signing_keys"
        )

    async def ensure_package(self, artifact_href: str, file_name: str) -> str:
        """The RPM package content of the artifact, made in the request (no Pulp task)."""
        href = self._own_path(artifact_href, ARTIFACTS, "artifact")
        return await self._step(
            f"importing RPM {file_name!r} ({href})",
            lambda: self._upload(RPM_PACKAGES, {"artifact": href}),
        )

    async def ensure_file(self, artifact_href: str, file_name: str) -> str:
        """The file content of the artifact under `file_name`: found by sha256 and path, or
        made in the request (Pulp answers the existing unit when it has it)."""
        href = self._own_path(artifact_href, ARTIFACTS, "artifact")
        return await self._step(
            f"importing file {file_name!r} ({href})",
            lambda: self._upload(FILE_CONTENT, {"artifact": href, "relative_path": file_name}),
        )

    async def add_content(self, repo_href: str, content_hrefs: list[str]) -> str | None:
        """Add the content units in one new repository version; returns its href."""
        units = sorted(set(content_hrefs))
        return await self._step(
            f"adding {len(units)} content unit(s) to {repo_href}",
            lambda: self._add_content(repo_href, units),
        )

    async def replace_content(self, repo_href: str, add: list[str], remove: list[str]) -> None:
        """Remove and add in one `modify`: one new version, never a moment with both or
        neither (a unit both removed and added stays)."""
        adding = sorted(set(add))
        removing = sorted(set(remove) - set(adding))
        change = {"add_content_units": adding, "remove_content_units": removing}
        await self._step(
            f"swapping {len(removing)} for {len(adding)} package(s) in {repo_href}",
            lambda: self._modify(repo_href, change),
        )

    async def remove_content(self, repo_href: str, content_hrefs: list[str]) -> str | None:
        """Remove the content units in one new repository version (units absent are fine)."""
        units = sorted(set(content_hrefs))
        return await self._step(
            f"removing {len(units)} content unit(s) from {repo_href}",
            lambda: self._modify(repo_href, {"remove_content_units": units}),
        )

    # The steps themselves (never call a public method from here: a step in a step would
    # multiply the retries)

    async def _ensure_repository(self, kind: RepoKind, name: str, *, publish: bool) -> PulpRepo:
        repo_href = await self._find_or_create_repository(kind, name)
        # Independent Pulp tasks, so their polls overlap; both end before this step does.
        steps: list[Awaitable[object]] = [self._ensure_distribution(kind, name, repo_href)]
        if publish:
            steps.append(self._ensure_publication(kind, repo_href))
        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return PulpRepo(name=name, href=repo_href, base_url=str(outcomes[0]))

    async def _find_or_create_repository(self, kind: RepoKind, name: str) -> str:
        """Created first (the name is new but for a retry or a redelivery): one request."""
        body = {"name": name, "autopublish": True}
        response = await self._call("POST", kind.repositories, json=body)
        found = None
        if response.status_code == 400:
            # The name is taken: by an earlier try of this step, or a concurrent one.
            found = await self._find_one(kind.repositories, name=name)
        if found is None:
            found = self._checked("POST", kind.repositories, response)
        return str(found["pulp_href"])

    async def _ensure_publication(self, kind: RepoKind, repo_href: str) -> None:
        """An empty repository gets a publication too, so dnf finds its metadata at once."""
        if await self._find_one(kind.publications, repository=repo_href) is None:
            task = await self._json("POST", kind.publications, json={"repository": repo_href})
            await self.wait_task(task["task"])

    async def _ensure_distribution(self, kind: RepoKind, name: str, repo_href: str) -> str:
        distro_name = f"{name}-distro"
        body = {
            "name": distro_name,
            "base_path": f"{kind.base_path}/{name}",
            "repository": repo_href,
        }
        # Created first, as the repository: a name already taken is a 400 at once.
        found: Json | None
        try:
            task = await self.wait_task(
                (await self._json("POST", kind.distributions, json=body))["task"]
            )
            found = await self._json("GET", task["created_resources"][0])
        except PulpError:
            found = await self._find_one(kind.distributions, name=distro_name)
            if found is None:
                raise
        if found.get("repository") != repo_href:
            patched = await self._json("PATCH", found["pulp_href"], json={"repository": repo_href})
            await self.wait_task(patched["task"])
        return str(found["base_url"])

    async def _adopt_repository(self, kind: RepoKind, repo_href: str, name: str) -> PulpRepo:
        """Idempotent: a retry finds what an earlier try renamed already. Five requests."""
        distributions = await self._list(kind.distributions, repository=repo_href)
        if len(distributions) != 1:
            raise PulpError(f"{repo_href} has {len(distributions)} distributions, not one")
        distribution = distributions[0]
        wanted = {"name": f"{name}-distro", "base_path": f"{kind.base_path}/{name}"}
        # The distribution first: until it is renamed the repository keeps its pool name,
        # so a failure here leaves an entry the pool can still tell apart.
        if any(distribution[key] != value for key, value in wanted.items()):
            await self._update(distribution["pulp_href"], wanted)
        # A repository Pulp lost is a 404 here; an unchanged name is a 200 without a task.
        await self._update(repo_href, {"name": name})
        return PulpRepo(name=name, href=repo_href, base_url=_moved(distribution, wanted))

    async def _update(self, href: str, change: Json) -> None:
        """A PATCH: Pulp answers 202 with a task it ran in the request (an "immediate"
        task, no worker) unless a lock was busy, or 200 when nothing changed."""
        answer = await self._json("PATCH", href, json=change)
        if "task" not in answer:
            return
        # Ran in the request as a rule: one look instead of a watcher round, and not counted
        # as a worker task; deferred to a worker (a busy lock), it is waited for as any task.
        task = await self._json("GET", answer["task"])
        if task["state"] != "completed":
            await self.wait_task(answer["task"])

    async def _delete_repository(self, repo_href: str) -> None:
        kind = next((k for k in REPO_KINDS if repo_href.startswith(k.repositories)), None)
        if kind is None:
            raise PulpError(f"{repo_href} is not an RPM or file repository")
        repo = await self._get_or_none(repo_href)
        distributions = await self._list(kind.distributions, repository=repo_href)
        if repo is not None:
            distributions += await self._list(kind.distributions, name=f"{repo['name']}-distro")
        for href in sorted({d["pulp_href"] for d in distributions}):
            await self._delete(href)
        if repo is not None:
            await self._delete(repo_href)

    async def _delete_repository_named(self, kind: RepoKind, name: str) -> None:
        repo = await self._find_one(kind.repositories, name=name)
        if repo is not None:
            await self._delete_repository(repo["pulp_href"])
        for distribution in await self._list(kind.distributions, name=f"{name}-distro"):
            await self._delete(distribution["pulp_href"])

    async def _upload(self, endpoint: str, body: Json) -> str:
        """Pulp's synchronous `upload/` action: content made in the request, no task."""
        response = await self._call("POST", f"{endpoint}upload/", json=body)
        if response.status_code == 400 and endpoint == RPM_PACKAGES:
            # The package exists (made meanwhile by another report): take that one.
            sha256 = (await self._json("GET", body["artifact"]))["sha256"]
            found = await self._find_one(RPM_PACKAGES, pkgId=sha256, fields="pulp_href")
            if found is not None:
                return str(found["pulp_href"])
        return str(self._checked("POST", f"{endpoint}upload/", response)["pulp_href"])

    async def _add_content(self, repo_href: str, units: list[str]) -> str | None:
        return await self._modify(repo_href, {"add_content_units": units})

    async def _modify(self, repo_href: str, change: Json) -> str | None:
        answer = await self._json("POST", f"{repo_href}modify/", json=change)
        task = await self.wait_task(answer["task"])
        versions = [href for href in task["created_resources"] if "/versions/" in href]
        return versions[0] if versions else None
