"""Pairing over real TCP on loopback: the inviter's and joiner's drivers."""

from __future__ import annotations

import anyio
import pytest

from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.pairing import Invitation, new_secret, parse_code
from covey.core.seal import open_bytes, seal_bytes
from covey.errors import HandshakeFailed, NotAllowed
from covey.runtime.pairing import join, welcome
from tests.conftest import NOW, SeededRng

pytestmark = pytest.mark.anyio


LAPTOP = create_identity("laptop", NOW, SeededRng("laptop"))
PHONE = create_identity("phone", NOW, SeededRng("phone"))


async def attempt(group: Group, invitation: Invitation, code: str):
    """One joiner connecting to an inviter serving `invitation`; both outcomes."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    results: dict[str, object] = {}
    persisted = []

    async def persist(g: Group) -> None:
        persisted.append(len(g.log))

    async def serve(stream) -> None:
        try:
            results["inviter"] = await welcome(
                stream, LAPTOP, group, invitation, rng=SeededRng("w"), now=NOW, persist=persist
            )
        except Exception as exc:
            results["inviter"] = exc
        finally:
            await stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        try:
            with anyio.fail_after(10):
                results["joiner"] = await join(stream, PHONE, parse_code(code), rng=SeededRng("j"))
        except Exception as exc:
            results["joiner"] = exc
        finally:
            await stream.aclose()
        with anyio.fail_after(10):
            while "inviter" not in results:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await listener.aclose()
    results["persisted"] = persisted
    return results


def new_group() -> tuple[Group, Invitation]:
    group = Group.create(LAPTOP, "family", "shared", NOW, SeededRng("g"))
    invitation = Invitation(group.id, "member", new_secret(SeededRng("s")), NOW + 600)
    return group, invitation


async def test_right_code_joins_and_can_open_what_the_inviter_sealed() -> None:
    group, invitation = new_group()
    sealed = seal_bytes(group, b"the wifi password", b"", SeededRng("x"))
    results = await attempt(group, invitation, invitation.secret.code)
    joined, served = results["joiner"], results["inviter"]
    assert not isinstance(joined, Exception), joined
    assert joined.sas == served.sas
    assert joined.peer_name == "laptop"
    assert served.peer_name == "phone"
    assert PHONE.device_id.raw in joined.group.state.members
    assert results["persisted"] == [len(group.log)]  # persisted before sending
    plain, _ = open_bytes(lambda _g: joined.group, sealed)  # shared history
    assert plain == b"the wifi password"
    assert invitation.used


async def test_wrong_code_fails_first_try_on_both_sides_and_three_end_it() -> None:
    group, invitation = new_group()
    nameplate = invitation.secret.code.split("-")[0]
    for attempt_number in range(3):
        results = await attempt(group, invitation, f"{nameplate}-academic-acid")
        assert isinstance(results["joiner"], HandshakeFailed)
        assert isinstance(results["inviter"], HandshakeFailed)
        assert invitation.attempts_left == 2 - attempt_number
    results = await attempt(group, invitation, invitation.secret.code)  # now even the right one
    assert isinstance(results["inviter"], NotAllowed)
    assert isinstance(results["joiner"], HandshakeFailed)
    assert len(group.state.members) == 1


async def test_a_member_whose_welcome_was_lost_can_pair_again() -> None:
    """If the welcome never arrived, a new code brings the log, not a second add."""
    group, invitation = new_group()
    first = await attempt(group, invitation, invitation.secret.code)
    assert not isinstance(first["joiner"], Exception)
    ops_after_first = len(group.log)
    again = Invitation(group.id, "member", new_secret(SeededRng("again")), NOW + 600)
    second = await attempt(group, again, again.secret.code)
    assert not isinstance(second["joiner"], Exception), second["joiner"]
    assert len(group.log) == ops_after_first  # nothing new was written
    assert PHONE.device_id.raw in second["joiner"].group.state.members
