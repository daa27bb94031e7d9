"""The control socket: how CLI commands reach the running node, and the home lock.

DESIGN. While `covey up` runs it is the one writer of the store: it holds an
exclusive `flock` on `<home>/node.lock` for its whole life, and serves a
Unix socket, `<home>/node.sock` (mode 0600, in the owner-only home). A
command that changes state first tries the lock:

* got it: no node runs; the command runs a node of its own on the store
  (`covey.runtime.local`) and holds the lock until it is done, so `covey up`
  cannot start half way through;
* held: it sends its command over the socket and reads the replies. A
  socket that refuses (or is missing) means the holder is another short
  command, or a `covey up` still starting: it retries for `LOCK_WAIT`
  seconds, then gives up with `NodeBusy`. It never waits on a dead socket:
  a socket file left by a node that died is refused at once by the kernel,
  and removed by the next command or node that takes the lock.

One node per home: a second `covey up` is refused (`NodeRunning`). The
holder of the lock notes its process ID, its command and when it started
in the lock file, so the refusal (and a `NodeBusy`) names that process and
says how to stop it (`kill PID`, Ctrl-C where it runs) or, for a `covey
up`, that commands reach it by themselves.

Who may use the socket: whoever can open it, that is the home's owner (the
same trust as ssh-agent's socket). A command through the socket does not ask
for the store's passphrase: the node is already unlocked.

The protocol: one JSON line from the client (`{"action": name, ...fields}`,
at most `MAX_LINE` bytes), then one JSON line per `Reply` from the node
(`{"data": ..., "final": bool, "error": name or null}`). The client closing
its end cancels the request (an invitation stops being offered).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import math
import os
import re
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, get_args, get_origin, get_type_hints

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from covey import errors
from covey.core.node import io
from covey.errors import (
    CoveyError,
    MalformedMessage,
    NodeBusy,
    NodeGone,
    NodeRunning,
    NoIdentity,
    StoreError,
)

SOCKET_NAME: Final = "node.sock"
LOCK_NAME: Final = "node.lock"
#: Bytes of one request or reply line.
MAX_LINE: Final = 64 * 1024
#: Clients served at once; more are refused at once (NodeBusy).
MAX_CLIENTS: Final = 16
#: Seconds a client has to send its request.
REQUEST_TIMEOUT: Final = 5.0
#: Seconds a command waits for the lock's holder to be reachable.
LOCK_WAIT: Final = 10.0

ACTIONS: Final[dict[str, type[io.Action]]] = {
    "create": io.CreateGroup,
    "rotate": io.Rotate,
    "heal": io.Heal,
    "remove": io.RemoveDevice,
    "role": io.ChangeRole,
    "leave": io.Leave,
    "shred": io.Shred,
    "invite": io.Invite,
    "person-set": io.PlacePerson,
    "person-rename": io.RenamePerson,
    "recovery-setup": io.SetupRecovery,
    "recovery-veto": io.VetoClaim,
    "recovery-ask": io.AskHolders,
    "recovery-approve": io.ApproveRequest,
    "relay-add": io.AddRelay,
    "relay-remove": io.RemoveRelay,
    "join": io.Join,
}
NAMES: Final = {kind: name for name, kind in ACTIONS.items()}


# --- the lock ------------------------------------------------------------------------


#: Bytes of the lock file's note of its holder, at most.
MAX_HOLDER_NOTE: Final = 512
_COMMAND: Final = re.compile(r"^covey( [a-z]+){0,3}$")


@dataclass(frozen=True)
class Holder:
    """Who holds the home lock (its note in the lock file): a process, its command, since when."""

    pid: int
    command: str
    since: float

    @property
    def is_node(self) -> bool:
        return self.command == "covey up"

    def named(self) -> str:
        """`covey up (process 1234, since 14:02)`."""
        since = time.strftime("%H:%M", time.localtime(self.since))
        return f"{self.command} (process {self.pid}, since {since})"


class HomeLock:
    """An exclusive `flock` on `<home>/node.lock` (released when the process ends).

    Its holder writes a note in the file, `{pid, command, since}`, so a
    process that finds the lock taken can say which process holds it, and
    how to stop it or reach it (`refuse_node`, `busy`); the note is cleared
    on release, and a note whose process is gone (killed) is ignored.
    """

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_NAME
        self._fd: int | None = None

    def try_acquire(self, command: str = "covey") -> bool:
        """Take the lock if it is free (noting `command` and this process); False if held.

        A home that does not exist has no identity yet (`NoIdentity`); one
        that cannot hold the lock file is a `StoreError`, in one line.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError as exc:
            raise NoIdentity() from exc
        except NotADirectoryError as exc:
            raise StoreError(f"{self.path.parent} is not a directory") from exc
        except OSError as exc:
            raise StoreError(f"cannot use {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._fd = fd
        note = {"pid": os.getpid(), "command": command, "since": time.time()}
        with contextlib.suppress(OSError):  # (the note only helps others explain)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode() + b"\n", 0)
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Holder | None:
        """The holder's note, if there is one and its process is alive (else None)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            raw = os.read(fd, MAX_HOLDER_NOTE)
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            note = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(note, dict):
            return None
        pid, command, since = note.get("pid"), note.get("command"), note.get("since")
        if not (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31):
            return None
        if not (isinstance(command, str) and _COMMAND.match(command)):
            return None
        if not (isinstance(since, (int, float)) and math.isfinite(since)):
            return None
        try:
            os.kill(pid, 0)  # is it alive? (signal 0 sends nothing)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's (cannot be: the home is owner-only)
        return Holder(pid, command, float(since))

    def refuse_node(self) -> NodeRunning:
        """Why a second `covey up` cannot start here: who holds the lock, what to do."""
        holder = self.holder()
        if holder is None:
            return NodeRunning(
                "another covey process holds this device's store (covey up, or a command"
                " that changes it): stop it first, then start covey up"
            )
        if holder.is_node:
            return NodeRunning(
                f"{holder.named()} is already running for this device: other covey commands"
                f" reach it by themselves; to stop it, press Ctrl-C where it runs or run"
                f" `kill {holder.pid}`"
            )
        return NodeRunning(
            f"{holder.named()} is changing this device's store: wait for it to end, or stop"
            f" it (Ctrl-C where it runs, or `kill {holder.pid}`), then start covey up"
        )

    def busy(self) -> NodeBusy:
        """Why a command could not reach the lock's holder: who it is, what to do."""
        holder = self.holder()
        if holder is None:
            return NodeBusy()
        if holder.is_node:
            return NodeBusy(
                f"{holder.named()} holds this device's store but does not answer on"
                f" {SOCKET_NAME}: try again in a moment, or restart it (`kill {holder.pid}`,"
                " then covey up)"
            )
        return NodeBusy(
            f"{holder.named()} is changing this device's store: wait for it to end"
            f" (or stop it: Ctrl-C where it runs, or `kill {holder.pid}`), then try again"
        )


# --- actions and replies as JSON ------------------------------------------------------


def encode_action(action: io.Action) -> bytes:
    fields = {f.name: _plain(getattr(action, f.name)) for f in dataclasses.fields(action)}
    return json.dumps({"action": NAMES[type(action)], **fields}).encode() + b"\n"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return list(value)
    return value


def decode_action(line: bytes) -> io.Action:
    """An action from a request line; anything else is `MalformedMessage`."""
    try:
        document = json.loads(line)
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise MalformedMessage("the request is not JSON") from exc
    if not isinstance(document, dict):
        raise MalformedMessage("the request is not a JSON object")
    name = document.pop("action", None)
    kind = ACTIONS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise MalformedMessage("the request names no known action")
    hints = get_type_hints(kind)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        if field.name not in document:
            continue
        values[field.name] = _typed(hints[field.name], document.pop(field.name))
    if document:
        raise MalformedMessage("the request has unknown fields")
    try:
        return kind(**values)
    except TypeError as exc:
        raise MalformedMessage("the request lacks a field") from exc


def _typed(hint: Any, value: Any) -> Any:
    """`value` checked against a field's type (str, int, float, bytes, literals, tuples)."""
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is str and isinstance(value, str):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                break
            if math.isfinite(number):
                return number
            break
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            if abs(value) < 2**53:
                return value
            break
        if option is bytes and isinstance(value, str):
            try:
                return bytes.fromhex(value)
            except ValueError:
                break
        if get_origin(option) is tuple and isinstance(value, list) and len(value) == 2:
            host, port = value  # the only tuple field: an address (host, port)
            if isinstance(host, str) and isinstance(port, int) and 0 < port < 65536:
                return (host, port)
        if get_origin(option) is Literal and value in get_args(option):
            return value
    raise MalformedMessage("a field of the request has the wrong type")


def reply_document(reply: io.Reply) -> dict[str, Any]:
    return {"data": reply.data, "final": reply.final, "error": reply.error}


def encode_reply(reply: io.Reply, port: int = 0) -> bytes:
    return json.dumps(with_port(reply_document(reply), port)).encode() + b"\n"


def with_port(document: dict[str, Any], port: int) -> dict[str, Any]:
    """An invitation's reply with the port the inviter listens on (for `join --address`)."""
    if (document.get("data") or {}).get("event") == "invitation":
        document["data"] = {**document["data"], "port": port}
    return document


def reply_error(reply: dict[str, Any]) -> CoveyError:
    """The `covey.errors` exception a failed reply names (CoveyError if none fits)."""
    kind = getattr(errors, str(reply.get("error")), None)
    message = str((reply.get("data") or {}).get("message", "the node refused the command"))
    if isinstance(kind, type) and issubclass(kind, CoveyError):
        return kind(message)
    return CoveyError(message)


# --- the node's side --------------------------------------------------------------------


class Served(Protocol):
    """What the socket serves: the driver's `request`, and its port."""

    port: int | None

    def request(self, action: io.Action) -> contextlib.AbstractAsyncContextManager[Any]: ...


async def serve(home: Path, node: Served, tg: anyio.abc.TaskGroup) -> anyio.abc.Listener[Any]:
    """Serve the control socket in `tg` (the caller holds the home lock); the listener."""
    path = home / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # we hold the lock: any socket file here is stale
    old = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    slots = anyio.Semaphore(MAX_CLIENTS)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                busy = NodeBusy("too many commands are waiting on this node: try again later")
                with contextlib.suppress(Exception):
                    await stream.send(encode_reply(_refusal(busy)))
                return
            try:
                await _handle(stream, node)
            except Exception:  # noqa: S110 (one bad client closes its own connection only)
                pass
            finally:
                slots.release()

    tg.start_soon(listener.serve, handle)
    return listener


async def _handle(stream: anyio.abc.ByteStream, node: Served) -> None:
    reader = BufferedByteReceiveStream(stream)
    with anyio.fail_after(REQUEST_TIMEOUT):
        line = await reader.receive_until(b"\n", MAX_LINE)
    try:
        action = decode_action(line)
    except MalformedMessage as exc:
        await stream.send(encode_reply(_refusal(exc)))
        return
    async with anyio.create_task_group() as tg:

        async def watch_client() -> None:
            """The client closing its end cancels the request."""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                while True:
                    await reader.receive()
            tg.cancel_scope.cancel()

        tg.start_soon(watch_client)
        async with node.request(action) as replies:
            async for reply in replies:
                await stream.send(encode_reply(reply, node.port or 0))
                if reply.final:
                    break
        tg.cancel_scope.cancel()


def _refusal(error: CoveyError) -> io.Reply:
    return io.Reply(0, {"message": str(error), "code": error.code}, error=type(error).__name__)


def remove_socket(home: Path) -> None:
    """Remove the socket file (the caller holds the lock, so it is stale or ours)."""
    with contextlib.suppress(FileNotFoundError):
        (home / SOCKET_NAME).unlink()


# --- the command's side ------------------------------------------------------------------


async def call(home: Path, action: io.Action) -> AsyncIterator[dict[str, Any]]:
    """Send `action` to the running node; yield its replies (dicts) to the final one.

    Raises `NodeBusy` if the socket does not answer within `LOCK_WAIT`.
    """
    path = home / SOCKET_NAME
    deadline = anyio.current_time() + LOCK_WAIT
    while True:
        try:
            stream = await anyio.connect_unix(path)
            break
        except OSError as exc:
            if (
                exc.errno not in (errno.ENOENT, errno.ECONNREFUSED)
                or anyio.current_time() > deadline
            ):
                raise NodeBusy() from exc
            await anyio.sleep(0.1)
    async with stream:
        await stream.send(encode_action(action))
        reader = BufferedByteReceiveStream(stream)
        while True:
            try:
                line = await reader.receive_until(b"\n", MAX_LINE)
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.DelimiterNotFound) as exc:
                # Not NodeBusy: the command may have been done; it is not retried.
                raise NodeGone() from exc
            try:
                reply = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MalformedMessage("the node's reply is not JSON") from exc
            if not isinstance(reply, dict):
                raise MalformedMessage("the node's reply is not a JSON object")
            yield reply
            if reply.get("final"):
                return
