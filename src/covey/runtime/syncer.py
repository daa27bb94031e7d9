"""One anti-entropy exchange over an open channel (the async driver of `core.sync`).

Persist, then send: the groups a message changed are handed to `persist`
(one store transaction) before any reply leaves, so a crash never leaves a
peer believing this device holds ops it did not keep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from covey.core.sync import BYE, SyncSession
from covey.net.tcp import Channel


@dataclass
class SyncReport:
    """What one exchange did."""

    changed: set[bytes] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    messages: int = 0


async def sync_once(
    channel: Channel,
    session: SyncSession,
    persist: Callable[[set[bytes]], Awaitable[None]],
) -> SyncReport:
    """Exchange with the peer until each side has everything the other had."""
    report = SyncReport()
    await channel.send(session.hello())
    waiting = 1  # our hello awaits its "done"
    sent_bye = peer_bye = False
    while not (sent_bye and peer_bye):
        if waiting == 0 and not sent_bye:
            await channel.send(BYE)
            sent_bye = True
            continue
        outcome = session.receive(await channel.receive())
        report.messages += 1
        report.refused += outcome.refused
        if outcome.changed:
            await persist(outcome.changed)
            report.changed |= outcome.changed
        for message in outcome.send:
            await channel.send(message)
        waiting += outcome.asked - outcome.answered
        peer_bye |= outcome.peer_finished
    return report
