"""A small SMTP server on loopback (asyncio, in a thread) that keeps every message and the whole
conversation, for the alert tests. Speaks EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SmtpServer:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)  # (user, password) from AUTH PLAIN
    transcript: bytearray = field(default_factory=bytearray)  # every byte a client sent

    def __enter__(self) -> SmtpServer:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            self._server = await asyncio.start_server(self._session, self.host, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop)
        assert ready.wait(5), "the SMTP server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 localhost test SMTP")
        sender, recipients = "", []
        try:
            while line := await reader.readline():
                self.transcript += line
                verb, _, arg = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    say("250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME")
                elif verb == "HELO":
                    say("250 localhost")
                elif verb == "AUTH":
                    _, _, creds = arg.partition(" ")
                    _, user, password = base64.b64decode(creds).decode().split("\0")
                    self.logins.append((user, password))
                    say("235 2.7.0 Authentication successful")
                elif verb == "MAIL":
                    sender, recipients = arg.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                    say("250 OK")
                elif verb == "RCPT":
                    recipients.append(arg.split(":", 1)[1].strip().strip("<>"))
                    say("250 OK")
                elif verb == "DATA":
                    say("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    raw = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        raw += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.transcript += raw
                    self.messages.append(Received(sender, recipients, message_from_bytes(bytes(raw), policy=policy.default),
                                                  bytes(raw)))
                    say("250 OK: queued")
                elif verb in ("RSET", "NOOP"):
                    say("250 OK")
                elif verb == "QUIT":
                    say("221 Bye")
                    await writer.drain()
                    break
                else:
                    say("502 Command not implemented")
                await writer.drain()
        finally:
            writer.close()
