"""The simulator's scenarios: who has which device where, what they do, what breaks.

Each scenario builds its world (homes, devices, uptime, links between homes,
users' actions, faults) for `days` of virtual time. Every run then ends with
the same heal phase (`runner`): all devices on, all homes linked, no faults,
for `HEAL_PHASE` seconds, after which liveness and "no lost keys" must hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Final

from covey.sim.network import QUIET, Faults
from covey.sim.relay import Lies
from covey.sim.users import HOUR, Users, schedule_uptime
from covey.sim.world import DAY, EPOCH, Device, World

#: A flaky but usable network, and devices that sometimes crash mid-write.
FLAKY: Final = Faults(
    p_break=0.002,
    p_drop=0.0005,
    p_duplicate=0.0005,
    p_garble=0.0005,
    p_crash=0.02,
    advert_linger=4500.0,
)

#: A reliable network where devices go off without a goodbye: their adverts
#: stay in the others' caches for up to mDNS's 75 minutes.
LINGERING: Final = Faults(advert_linger=4500.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    days: float
    homes: int
    faults: Faults
    build: Callable[[World, Users, float], None]


def _start(day: float, hour: float) -> float:
    return EPOCH + day * DAY + hour * HOUR


def lan_pair(world: World, users: Users, days: float) -> None:
    """Two devices on one LAN, always on: pair, then rotate and seal now and then."""
    end = EPOCH + days * DAY
    laptop = world.add_device("laptop", "ana", 0)
    phone = world.add_device("phone", "ana", 0)
    for device in (laptop, phone):
        schedule_uptime(world, device, "always", EPOCH, end)
    world.at(EPOCH + 60, lambda: users.create(laptop))
    world.at(EPOCH + 120, lambda: users.pair(laptop, phone))
    both = [laptop, phone]
    users.every(2 * HOUR, EPOCH + 600, end, lambda: users.rotate(world.rand.choice(both)))
    users.every(HOUR, EPOCH + 600, end, lambda: users.seal(world.rand.choice(both)))


def family(world: World, users: Users, days: float) -> None:
    """Six devices of four people in three homes, a week of diurnal uptime.

    Day 0 evening everyone is at Ana's (home 0) and pairs. Then each goes
    home; homes 0 and 1 are linked (a VPN) for an hour or two on some
    evenings; Ana's phone visits grandma (home 2) on some afternoons. While
    apart, Ben adds a new tablet at home 1 and Ana removes Dad's lost phone at
    home 0; grandma gets a new phone when Ana's phone visits.
    """
    end = EPOCH + days * DAY
    ana_laptop = world.add_device("ana-laptop", "ana", 0)
    ana_phone = world.add_device("ana-phone", "ana", 0)
    dad_phone = world.add_device("dad-phone", "dad", 0)
    ben_laptop = world.add_device("ben-laptop", "ben", 0)
    ben_phone = world.add_device("ben-phone", "ben", 0)
    grandma = world.add_device("grandma-tablet", "grandma", 0)
    ben_tablet = world.add_device("ben-tablet", "ben", 1)
    grandma_phone = world.add_device("grandma-phone", "grandma", 2)
    gathering = _start(0, 18)
    for device in (ana_laptop, ana_phone, dad_phone, ben_laptop, ben_phone, grandma):
        world.at(gathering, partial(world.set_online, device, True))
    world.at(gathering + 60, lambda: users.create(ana_laptop))
    order: list[tuple[Device, str]] = [
        (ana_phone, "admin"),
        (ben_laptop, "admin"),
        (dad_phone, "member"),
        (ben_phone, "member"),
        (grandma, "member"),
    ]
    for i, (device, role) in enumerate(order):
        world.at(gathering + 120 + 90 * i, partial(users.pair, ana_laptop, device, role))
    home_time = _start(0, 22)
    world.at(home_time, partial(_move, world, (ben_laptop, ben_phone), 1))
    world.at(home_time, lambda: world.network.move(grandma.index, 2))
    profiles = {
        ana_laptop: "evening",
        ana_phone: "phone",
        dad_phone: "phone",
        ben_laptop: "always",
        ben_phone: "phone",
        grandma: "day",
        ben_tablet: "day",
        grandma_phone: "phone",
    }
    for device, profile in profiles.items():
        first = home_time if device not in (ben_tablet, grandma_phone) else _start(2, 0)
        schedule_uptime(world, device, profile, first, end)
    # Homes 0 and 1 linked on some evenings.
    for day in range(1, int(days) + 1):
        if world.rand.chance(0.5):
            up = _start(day, world.rand.uniform(19, 22))
            world.at(up, lambda: world.network.link(0, 1, True))
            world.at(up + world.rand.uniform(1, 2) * HOUR, lambda: world.network.link(0, 1, False))
        if world.rand.chance(0.4):  # Ana's phone visits grandma
            there = _start(day, world.rand.uniform(13, 16))
            world.at(there, lambda: world.network.move(ana_phone.index, 2))
            world.at(there + 2 * HOUR, lambda: world.network.move(ana_phone.index, 0))
    # Changes while apart: Ben adds his tablet, Ana removes Dad's lost phone.
    world.at(_start(2, 10), lambda: users.pair(ben_laptop, ben_tablet))
    world.at(_start(2, 19), lambda: users.remove(ana_laptop, dad_phone))
    world.at(_start(2, 19.5), lambda: world.set_online(dad_phone, False))
    for day in range(3, int(days) + 1):
        world.at(_start(day, 14.5), lambda: users.pair(ana_phone, grandma_phone))
    everyone = list(profiles)
    users.every(8 * HOUR, home_time, end, lambda: users.rotate(world.rand.choice(everyone)))
    users.every(3 * HOUR, home_time, end, lambda: users.seal(world.rand.choice(everyone)))


def family_relay(world: World, users: Users, days: float) -> None:
    """`family`, with a relay on the internet that Ana's laptop names for the group
    before the others pair, so every member keeps an inbox there: a change made
    in one home reaches the others through it, whether or not homes are linked."""
    relay = world.add_relay("relay-0.sim")
    family(world, users, days)
    ana_laptop = world.devices[0]
    world.at(_start(0, 18) + 90, lambda: users.add_relay(ana_laptop, relay.link))


def lying_relay(world: World, users: Users, days: float) -> None:
    """`family-relay`, with a relay that lies: it drops a tenth of what is put, and
    replays, reorders and tampers with a tenth of the pages it serves. Safety
    holds at every step; what it holds back reaches the others another way."""
    relay = world.add_relay("relay-0.sim", Lies(drop=0.1, replay=0.1, reorder=0.1, tamper=0.1))
    family(world, users, days)
    ana_laptop = world.devices[0]
    world.at(_start(0, 18) + 90, lambda: users.add_relay(ana_laptop, relay.link))


def relay_outage(world: World, users: Users, days: float) -> None:
    """`family` with two relays, one of which is down for all of day 1 (00:00 to 24:00)."""
    first = world.add_relay("relay-0.sim")
    second = world.add_relay("relay-1.sim")
    family(world, users, days)
    ana_laptop = world.devices[0]
    world.at(_start(0, 18) + 90, lambda: users.add_relay(ana_laptop, first.link))
    world.at(_start(0, 18) + 100, lambda: users.add_relay(ana_laptop, second.link))
    world.at(_start(1, 0), lambda: world.set_relay_up(first, False))
    world.at(_start(2, 0), lambda: world.set_relay_up(first, True))


def _move(world: World, devices: Iterable[Device], home: int) -> None:
    for device in devices:
        world.network.move(device.index, home)


def partition(world: World, users: Users, days: float) -> None:
    """Four devices, two homes, split for `days`: changes on both sides, then the heal.

    All four pair at home 0 first; then two move to home 1 and the homes are
    not linked again until the end. Each side rotates, seals, adds a device
    of its own and removes one of the other side's (a lost device) while apart.
    """
    end = EPOCH + days * DAY
    a = world.add_device("a-laptop", "a", 0)
    b = world.add_device("b-laptop", "b", 0)
    c = world.add_device("c-phone", "c", 0)
    d = world.add_device("d-phone", "d", 0)
    new_a = world.add_device("a-tablet", "a", 0)
    new_b = world.add_device("b-tablet", "b", 1)
    for device in (a, b, c, d):
        world.at(EPOCH, partial(world.set_online, device, True))
    world.at(EPOCH + 60, lambda: users.create(a))
    world.at(EPOCH + 120, lambda: users.pair(a, b, "admin"))
    world.at(EPOCH + 240, lambda: users.pair(a, c))
    world.at(EPOCH + 360, lambda: users.pair(b, d))
    split = EPOCH + 900
    world.at(split, partial(_move, world, (b, d), 1))
    span = end - split
    world.at(split + 0.1 * span, lambda: world.set_online(new_a, True))
    world.at(split + 0.1 * span, lambda: world.set_online(new_b, True))
    world.at(split + 0.2 * span, lambda: users.pair(a, new_a))
    world.at(split + 0.25 * span, lambda: users.pair(b, new_b))
    world.at(split + 0.5 * span, lambda: users.remove(a, d))
    world.at(split + 0.55 * span, lambda: users.remove(b, c))
    left, right = [a, c, new_a], [b, d, new_b]
    # Changes at a steady rate, so a longer split leaves more to merge.
    users.every(4 * HOUR, split, end, lambda: users.rotate(world.rand.choice(left)))
    users.every(4 * HOUR, split, end, lambda: users.rotate(world.rand.choice(right)))
    users.every(2 * HOUR, split, end, lambda: users.seal(world.rand.choice(left + right)))


def churn(world: World, users: Users, days: float) -> None:
    """Twenty devices joining and leaving one group over `days`, around an always-on hub."""
    end = EPOCH + days * DAY
    hub = world.add_device("hub", "family", 0)
    schedule_uptime(world, hub, "always", EPOCH, end)
    world.at(EPOCH + 60, lambda: users.create(hub))
    devices = [world.add_device(f"d{i:02}", f"p{i % 7}", 0) for i in range(19)]
    for i, device in enumerate(devices):
        schedule_uptime(world, device, world.rand.choice(["day", "phone", "always"]), EPOCH, end)
        join_at = _start(world.rand.uniform(0, days * 0.6), 0) + world.rand.uniform(9, 20) * HOUR
        role = "admin" if i % 6 == 0 else "member"
        world.at(join_at, partial(users.pair, hub, device, role))
        if world.rand.chance(0.5):
            leave_at = join_at + world.rand.uniform(0.2, 2) * DAY
            if world.rand.chance(0.5):
                world.at(leave_at, partial(users.remove, hub, device))
            else:
                world.at(leave_at, partial(users.remove, device, device))
    members = [hub, *devices]
    users.every(4 * HOUR, EPOCH + HOUR, end, lambda: users.rotate(world.rand.choice(members)))
    users.every(2 * HOUR, EPOCH + HOUR, end, lambda: users.seal(world.rand.choice(members)))


def household(world: World, users: Users, days: float) -> None:
    """One home, five devices always on: removals of devices that stay on the LAN.

    Two admins (a laptop, a phone) and three members. Every few hours
    someone seals a note or rotates; a member tries to invite a new device
    (which only an admin may do); an admin removes a member's device while
    that device is still up and listening (a stolen phone), and another
    member leaves by itself. What a removed device can open afterwards is
    what `secrecy` checks.
    """
    end = EPOCH + days * DAY
    laptop = world.add_device("laptop", "ana", 0)
    phone = world.add_device("phone", "ana", 0)
    tablet = world.add_device("tablet", "kid", 0)
    tv = world.add_device("tv", "house", 0)
    watch = world.add_device("watch", "dad", 0)
    newcomer = world.add_device("newcomer", "guest", 0)
    everyone = [laptop, phone, tablet, tv, watch, newcomer]
    for device in everyone:
        schedule_uptime(world, device, "always", EPOCH, end)
    world.at(EPOCH + 60, lambda: users.create(laptop))
    world.at(EPOCH + 120, partial(users.pair, laptop, phone, "admin"))
    world.at(EPOCH + 240, partial(users.pair, laptop, tablet))
    world.at(EPOCH + 360, partial(users.pair, phone, tv))
    world.at(EPOCH + 480, partial(users.pair, laptop, watch))
    span = end - EPOCH - 600
    # A member tries to bring the newcomer in: refused (only admins invite).
    world.at(
        EPOCH + 600 + world.rand.uniform(0.1, 0.3) * span, partial(users.pair, tablet, newcomer)
    )
    removal = EPOCH + 600 + world.rand.uniform(0.3, 0.5) * span
    world.at(removal, partial(users.remove, world.rand.choice([laptop, phone]), tv))
    world.at(removal + world.rand.uniform(0.1, 0.3) * span, partial(users.remove, watch, watch))
    members = [laptop, phone, tablet, tv, watch]
    users.every(HOUR, EPOCH + 600, end, lambda: users.seal(world.rand.choice(members)))
    users.every(4 * HOUR, EPOCH + 600, end, lambda: users.rotate(world.rand.choice(members)))


def _three_of_ana(world: World, users: Users) -> tuple[Device, Device, Device]:
    """Ana's laptop, phone and tablet, on one LAN from the start; the laptop
    creates the group a minute in."""
    laptop = world.add_device("laptop", "ana", 0)
    phone = world.add_device("phone", "ana", 0)
    tablet = world.add_device("tablet", "ana", 0)
    for device in (laptop, phone, tablet):
        world.at(EPOCH, partial(world.set_online, device, True))
    world.at(EPOCH + 60, lambda: users.create(laptop))
    return laptop, phone, tablet


def away(world: World, users: Users, days: float) -> None:
    """Three devices; the tablet is off for most of the run while the others rotate.

    A regression scenario: with discovery tags keyed by the group's last
    three epochs (the first design), a device that missed three rotations
    never recognized its group's adverts again, and this run ended with the
    tablet stuck on an old epoch. Pairwise tags do not depend on epochs.
    """
    end = EPOCH + days * DAY
    laptop, phone, tablet = _three_of_ana(world, users)
    world.at(EPOCH + 120, partial(users.pair, laptop, phone, "admin"))
    world.at(EPOCH + 240, partial(users.pair, laptop, tablet))
    world.at(EPOCH + HOUR, partial(world.set_online, tablet, False))
    for k in range(6):  # six rotations while the tablet is away
        world.at(EPOCH + (2 + k) * HOUR, partial(users.rotate, (laptop, phone)[k % 2]))
    world.at(end - 2 * HOUR, partial(world.set_online, tablet, True))


def introduce(world: World, users: Users, days: float) -> None:
    """Three devices: the laptop (the admin) adds the phone, then, with the phone
    off, the tablet, and is off itself from then until the end; the phone comes
    back and meets the tablet without it.

    A regression scenario (issue 9, finding 6a): the phone, which synced
    before the tablet's add, refused the tablet as a device it did not know,
    and neither recognized the other's adverts (the phone advertised for the
    laptop only), so the two never synced until the laptop came back (the
    heal phase). Now the tablet probes the phone's advert and introduces
    itself. Both rotate and seal while the laptop is away.
    """
    end = EPOCH + days * DAY
    laptop, phone, tablet = _three_of_ana(world, users)
    world.at(EPOCH + 120, partial(users.pair, laptop, phone, "member"))
    world.at(EPOCH + HOUR, partial(world.set_online, phone, False))
    world.at(EPOCH + 2 * HOUR, partial(users.pair, laptop, tablet, "member"))
    world.at(EPOCH + 3 * HOUR, partial(world.set_online, laptop, False))
    world.at(EPOCH + 4 * HOUR, partial(world.set_online, phone, True))
    both = [phone, tablet]
    users.every(2 * HOUR, EPOCH + 5 * HOUR, end, lambda: users.rotate(world.rand.choice(both)))
    users.every(HOUR, EPOCH + 5 * HOUR, end, lambda: users.seal(world.rand.choice(both)))


def lost(world: World, users: Users, days: float) -> None:
    """Three devices on one LAN; the phone goes off without a goodbye, the laptop
    removes it, and the phone comes back hours later.

    A regression scenario (found in a manual run on a real LAN, issue 9): the
    phone's advert, still in the laptop's mDNS cache, was dialed and refused
    MAX_REMOVED_DIALS times, which used up every dial meant to tell the phone
    of its removal; when it came back it was never told. Dials that reach
    nothing now only back off (`liveness` checks that it was told).
    """
    end = EPOCH + days * DAY
    laptop, phone, tablet = _three_of_ana(world, users)
    world.at(EPOCH + 120, partial(users.pair, laptop, phone, "member"))
    world.at(EPOCH + 240, partial(users.pair, laptop, tablet, "member"))
    gone = EPOCH + HOUR + world.rand.uniform(0, HOUR)
    world.at(gone, partial(world.set_online, phone, False))
    world.at(gone + world.rand.uniform(60, 1800), partial(users.remove, laptop, phone))
    world.at(end - world.rand.uniform(1, 3) * HOUR, partial(world.set_online, phone, True))
    members = [laptop, tablet]
    users.every(HOUR, EPOCH + 600, end, lambda: users.seal(world.rand.choice(members)))


# --- recovery (PROTOCOL.md 19) -------------------------------------------------------

#: The veto window the recovery scenarios deal with: 4 hours of simulated time,
#: not the 72 hours of `covey recovery setup`'s default (see `simulations/README.md`:
#: a node counts the window again from each restart, so a longer one needs
#: devices that stay on that long).
SIM_VETO: Final = 4 * HOUR


def _family_of_three(
    world: World, users: Users, relay: bool
) -> tuple[dict[str, list[Device]], float]:
    """Ana (an admin: laptop, phone), Ben (laptop, phone) and Carl (tablet) pair at
    home (home 0) on day 0's evening, each device placed in its person; with
    `relay`, Ana's laptop names a relay for the group first. Returns the holder
    persons' devices and when the evening ends (diurnal uptime from then)."""
    world.persons = True
    people = {
        "ana": [world.add_device("ana-laptop", "ana", 0), world.add_device("ana-phone", "ana", 0)],
        "ben": [world.add_device("ben-laptop", "ben", 0), world.add_device("ben-phone", "ben", 0)],
        "carl": [world.add_device("carl-tablet", "carl", 0)],
    }
    gathering = _start(0, 18)
    for devices in people.values():
        for device in devices:
            world.at(gathering, partial(world.set_online, device, True))
    admin = people["ana"][0]
    world.at(gathering + 60, lambda: users.create(admin))
    if relay:
        link = world.add_relay("relay-0.sim").link
        world.at(gathering + 90, lambda: users.add_relay(admin, link))
    order = [(people["ana"][1], "admin"), *((d, "member") for d in people["ben"] + people["carl"])]
    for i, (device, role) in enumerate(order):
        world.at(gathering + 120 + 90 * i, partial(users.pair, admin, device, role))
    return people, _start(0, 22)


PROFILE_OF: Final = {
    "ana-laptop": "evening",
    "ana-phone": "phone",
    "ben-laptop": "day",
    "ben-phone": "phone",
    "carl-tablet": "day",
    "carl-phone": "phone",
}


def admin_away(world: World, users: Users, days: float) -> None:
    """Three people, five devices, a relay; recovery set up (K = 2 of the three
    persons, no paper, a 4-hour veto window); Ana, the only admin, is away with
    both her devices for two weeks from day 1 (home 1, never linked: she has only
    the relay). From 17:00 on day 1 grandma's new phone, at home, asks the holders
    to admit it; Ben and Carl approve when one of their devices is on at home with it
    (approving needs the LAN), and the nodes witness and complete the claim.
    Every device is on a diurnal profile."""
    end = EPOCH + days * DAY
    people, evening = _family_of_three(world, users, relay=True)
    admin = people["ana"][0]
    world.at(_start(0, 19.5), lambda: users.setup_recovery(admin, 2, 0, SIM_VETO))
    for devices in people.values():
        for device in devices:
            schedule_uptime(world, device, PROFILE_OF[device.name], evening, end)
    away, back = _start(1, 8), _start(15, 18)
    for device in people["ana"]:
        world.at(away, partial(world.network.move, device.index, 1))
        world.at(back, partial(world.network.move, device.index, 0))
    new = world.add_device("grandma-phone", "grandma", 0)
    schedule_uptime(world, new, "phone", _start(1, 12), end)
    holders = {name: people[name] for name in ("ben", "carl")}
    world.at(_start(1, 17), lambda: users.ask(new, holders))
    at_home = people["ben"] + people["carl"]
    users.every(6 * HOUR, evening, end, lambda: users.seal(world.rand.choice(at_home)))
    users.every(12 * HOUR, evening, end, lambda: users.rotate(world.rand.choice(at_home)))


def _lost_person(world: World, users: Users, days: float, *, lost: bool) -> None:
    world.persons = True
    end = EPOCH + days * DAY
    people, evening = _family_of_three(world, users, relay=False)
    carl_phone = world.add_device("carl-phone", "carl", 0)
    people["carl"].append(carl_phone)
    world.at(_start(0, 18), partial(world.set_online, carl_phone, True))
    world.at(_start(0, 18) + 700, partial(users.pair, people["ana"][0], carl_phone))
    admin = people["ana"][0]
    world.at(_start(0, 19.5), lambda: users.setup_recovery(admin, 3, 1, users_veto(lost)))
    gone = _start(1, 12)
    for devices in people.values():
        for device in devices:
            last = gone if device.person == "carl" else end
            schedule_uptime(world, device, PROFILE_OF[device.name], evening, last)
    new = world.add_device("carl-new", "carl", 0)
    schedule_uptime(world, new, "phone", _start(1, 14), end)
    holders = {name: people[name] for name in ("ana", "ben")}
    if lost:
        for device in people["carl"]:
            world.at(gone, partial(world.retire, device))
        world.at(_start(1, 15), lambda: users.ask(new, holders, person="carl"))
    else:
        # Carl's devices are only off (a day out); someone with Carl's paper asks
        # to recover him, the holders are talked into it, and Carl's phone, back
        # on, vetoes what it finds pending.
        world.at(_start(1, 15), lambda: users.ask(new, holders, "carl", expect="refused"))
        for device in people["carl"]:
            schedule_uptime(world, device, PROFILE_OF[device.name], _start(1, 19), end)
            users.veto_when_seen(device, _start(1, 19), end)
    others = people["ana"] + people["ben"]
    users.every(6 * HOUR, evening, end, lambda: users.seal(world.rand.choice(others)))


def users_veto(lost: bool) -> float:
    """The vetoed variant deals a 12-hour window: long enough for Carl to be back."""
    return SIM_VETO if lost else 3 * SIM_VETO


def lost_person(world: World, users: Users, days: float) -> None:
    """Ana (an admin: laptop, phone), Ben (laptop, phone), Carl (tablet, phone),
    one home, diurnal uptime; recovery set up (K = 3: three holder persons and one
    paper share, a 4-hour veto window). On day 1 at noon both of Carl's devices
    stop for good; from 15:00 Carl's new phone asks to recover Carl with the
    paper share's words, Ana and Ben release theirs when at hand, the phone
    claims, and the others' nodes witness and complete: Carl's old devices are
    replaced."""
    _lost_person(world, users, days, lost=True)


def vetoed_recovery(world: World, users: Users, days: float) -> None:
    """`lost-person`, but Carl's devices are only off from noon to 19:00 on day 1
    (a 12-hour veto window): someone with Carl's paper asks to recover him, Ana and
    Ben release their shares, and Carl's phone or tablet, back on, vetoes the
    pending claim. It never completes; the asking device never becomes a member."""
    _lost_person(world, users, days, lost=False)


def admission_odds(holders: int, threshold: int, p_day: float, window: float) -> Scenario:
    """A measurement: does an offline admission complete within a day after its window?

    `holders` persons, one device each, and an admin pair at home on day 0's
    evening; the admin deals (K = `threshold`, no paper, veto `window` seconds)
    and is off from 23:00 on (away). Each day from day 1 each holder's device is
    on with probability `p_day`, for the day (the "day" profile: about 08:00 to
    22:00), independently, else off all day. A new device, on from 08:30 on day 1,
    asks at 09:00 and keeps asking; holders approve when on (it is at home with
    them). Its result's `askings` say when the claim completed; nothing is
    expected of it at the end (a claim still pending is an outcome here, not a
    violation), but every invariant holds at every step.
    """

    def build(world: World, users: Users, days: float) -> None:
        world.persons = True
        end = EPOCH + days * DAY
        admin = world.add_device("admin", "admin", 0)
        devices = [world.add_device(f"holder-{i}", f"h{i}", 0) for i in range(holders)]
        gathering = _start(0, 18)
        for device in (admin, *devices):
            world.at(gathering, partial(world.set_online, device, True))
        world.at(gathering + 60, lambda: users.create(admin))
        for i, device in enumerate(devices):
            world.at(gathering + 120 + 90 * i, partial(users.pair, admin, device))
        world.at(_start(0, 21), lambda: users.setup_recovery(admin, threshold, 0, window))
        world.at(_start(0, 23), partial(world.set_online, admin, False))
        for device in devices:
            world.at(_start(0, 23), partial(world.set_online, device, False))
            for day in range(1, int(days) + 1):
                if world.rand.chance(p_day):
                    schedule_uptime(world, device, "day", _start(day, 0), _start(day + 1, 0))
        new = world.add_device("new-phone", "newcomer", 0)
        world.at(_start(1, 8.5), partial(world.set_online, new, True))
        people = {f"h{i}": [device] for i, device in enumerate(devices)}
        world.at(_start(1, 9), lambda: users.ask(new, people, expect="any"))
        world.at(end, lambda: None)

    name = f"admission-odds-n{holders}-k{threshold}-p{round(p_day * 100)}-w{round(window / 60)}"
    return Scenario(
        name,
        f"measure: {holders} holders on a day with p={p_day:g}, K={threshold}, "
        f"a {window / 3600:g} h window",
        2.5,
        1,
        LINGERING,
        build,
    )


SCENARIOS: Final = {
    s.name: s
    for s in (
        Scenario("lan-pair", "two devices pair and sync on one LAN", 1.0, 1, FLAKY, lan_pair),
        Scenario(
            "family",
            "6 devices of 4 people in 3 homes, linked some of the time, a week",
            7.0,
            3,
            FLAKY,
            family,
        ),
        Scenario(
            "family-relay",
            "family, with a relay every member keeps an inbox at",
            7.0,
            3,
            FLAKY,
            family_relay,
        ),
        Scenario(
            "lying-relay",
            "family, with a relay that drops, replays, reorders and tampers",
            4.0,
            3,
            FLAKY,
            lying_relay,
        ),
        Scenario(
            "relay-outage",
            "family, with two relays, one of them down for a day",
            4.0,
            3,
            FLAKY,
            relay_outage,
        ),
        Scenario(
            "partition",
            "a split with changes on both sides, then the heal",
            7.0,
            2,
            FLAKY,
            partition,
        ),
        Scenario("churn", "20 devices joining and leaving, a week", 7.0, 1, FLAKY, churn),
        Scenario("away", "a device off while the others rotate six times", 0.5, 1, QUIET, away),
        Scenario(
            "introduce",
            "a member added while another was away meets it with the admin off",
            0.5,
            1,
            QUIET,
            introduce,
        ),
        Scenario(
            "lost",
            "a phone off without a goodbye is removed, and told when it comes back",
            0.5,
            1,
            LINGERING,
            lost,
        ),
        Scenario(
            "household",
            "one home, removals of devices that stay up, a member who tries to invite",
            1.0,
            1,
            FLAKY,
            household,
        ),
        Scenario(
            "admin-away",
            "recovery: the admin away two weeks, holders at home admit a new device",
            16.0,
            2,
            FLAKY,
            admin_away,
        ),
        Scenario(
            "lost-person",
            "recovery: every device of a person lost, a new one recovers with the paper",
            4.0,
            1,
            FLAKY,
            lost_person,
        ),
        Scenario(
            "vetoed-recovery",
            "recovery: a person only away vetoes a recovery of them; it never completes",
            4.0,
            1,
            FLAKY,
            vetoed_recovery,
        ),
    )
}


def lookup(name: str) -> Scenario:
    """A scenario by name: one of `SCENARIOS`, or `admission-odds-nN-kK-pP-wM`
    (N holders, threshold K, P percent of days on, an M-minute veto window)."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    parts = name.removeprefix("admission-odds-").split("-")
    if name.startswith("admission-odds-") and len(parts) == 4:
        try:
            n, k, p, w = (int(part[1:]) for part in parts)
        except ValueError:
            pass
        else:
            if [part[0] for part in parts] == ["n", "k", "p", "w"]:
                return admission_odds(n, k, p / 100, w * 60.0)
    raise KeyError(name)
