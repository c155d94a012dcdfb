"""Claiming warm pool entries: exactly once across transactions (no Pulp involved)."""

import uuid

from sqlalchemy import delete

from artifacts.pool import RPM_READ, claim
from shared.db.models import PulpPoolEntry
from shared.db.session import SessionFactory, unit_of_work


async def test_concurrent_claims_take_distinct_entries_and_a_retry_finds_its_own(
    sessions: SessionFactory,
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with unit_of_work(sessions) as session:
        session.add_all(
            PulpPoolEntry(
                kind="rpm",
                published=True,
                name=f"claims-{tag}-{n}",
                repo_href=f"/pulp/api/v3/repositories/rpm/rpm/{tag}-{n}/",
            )
            for n in range(2)
        )
    try:
        async with sessions() as first, sessions() as second, first.begin(), second.begin():
            # The first claim's row stays locked while the second one claims: skipped.
            one = await claim(first, RPM_READ, f"one-{tag}")
            two = await claim(second, RPM_READ, f"two-{tag}")
            assert one is not None
            assert two is not None
            assert one.id != two.id
        async with unit_of_work(sessions) as session:
            again = await claim(session, RPM_READ, f"one-{tag}")
        assert again is not None
        assert again.id == one.id
    finally:
        async with unit_of_work(sessions) as session:
            await session.execute(
                delete(PulpPoolEntry).where(PulpPoolEntry.name.like(f"claims-{tag}-%"))
            )
