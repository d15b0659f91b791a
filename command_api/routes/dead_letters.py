"""Dead letters over HTTP (command_api/dead_letters.py): a tenant's admins list, inspect, replay and purge its
own; another tenant's dead letter is a 404, as a missing one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from command_api.dead_letters import DeadLetters
from command_api.deps import PublisherDep
from events.names import Name
from schemas.datasets import Accepted
from schemas.dead_letters import DeadLetterDetail, DeadLetterList, Purged, ReplayReport
from tributary.db.models import DeadLetterStatus
from tributary.deps import SessionDep, SettingsDep, TenantDep, allowed, tenant_wide
from tributary.errors import AUTHENTICATED, responses

router = APIRouter(
    prefix="/api/v1/admin/dead-letters",
    tags=["dead-letters"],
    responses=AUTHENTICATED,
    # The tenant's administration: admins only, and tenant-wide (a credential limited to some datasets has none).
    dependencies=[Depends(allowed("administer")), Depends(tenant_wide("administer"))],
)


async def get_dead_letters(
    tenant: TenantDep, session: SessionDep, settings: SettingsDep, publisher: PublisherDep
) -> DeadLetters:
    return DeadLetters(tenant, session, settings, publisher)


DeadLettersDep = Annotated[DeadLetters, Depends(get_dead_letters)]
StatusQuery = Annotated[DeadLetterStatus | None, Query(description="Only the dead letters in this status")]
DatasetQuery = Annotated[Name | None, Query(description="Only the dead letters of this dataset")]


@router.get("", response_model=DeadLetterList)
async def list_dead_letters(
    dead_letters: DeadLettersDep,
    status_: Annotated[StatusQuery, Query(alias="status")] = None,
    dataset: DatasetQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeadLetterList:
    return await dead_letters.list(status=status_, dataset=dataset, limit=limit, offset=offset)


@router.get("/{letter_id}", response_model=DeadLetterDetail, responses=responses(404))
async def get_dead_letter(letter_id: str, dead_letters: DeadLettersDep) -> DeadLetterDetail:
    """A dead letter with its reason and the original message."""
    return await dead_letters.get(letter_id)


@router.post(
    "/{letter_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=responses(404, 409),
)
async def replay_dead_letter(letter_id: str, dead_letters: DeadLettersDep) -> Accepted:
    """Submit the dead letter's command again, as a new operation (after fixing what rejected it). Replaying
    it again answers the same operation and publishes nothing; a message that is not a command is a 409."""
    return await dead_letters.replay(letter_id)


@router.post("/replay", response_model=ReplayReport)
async def replay_dead_letters(dead_letters: DeadLettersDep, dataset: DatasetQuery = None) -> ReplayReport:
    """Replay every dead letter not replayed yet, in the order its commands were first sent."""
    return await dead_letters.replay_all(dataset)


@router.delete("/{letter_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(404))
async def purge_dead_letter(letter_id: str, dead_letters: DeadLettersDep) -> None:
    await dead_letters.purge(letter_id)


@router.delete("", response_model=Purged)
async def purge_dead_letters(
    dead_letters: DeadLettersDep,
    status_: Annotated[StatusQuery, Query(alias="status")] = None,
    dataset: DatasetQuery = None,
) -> Purged:
    """Drop the dead letters (all of the tenant's, or those in a status or of a dataset)."""
    return Purged(purged=await dead_letters.purge_all(status=status_, dataset=dataset))
