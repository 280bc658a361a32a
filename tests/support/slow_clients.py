"""Raw-socket clients that misbehave: idle, trickling headers or body, leaving mid-body."""

from __future__ import annotations

import socket
import time

__all__ = ["connect", "read_until_closed", "request_head", "trickle_until_cut"]


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it is still open
    after ``within`` seconds of silence."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def trickle_until_cut(
    sock: socket.socket, pieces: list[bytes], every: float, within: float
) -> bytes:
    """Send one of ``pieces`` every ``every`` seconds until the server answers and closes;
    what it sent.  Raises TimeoutError if it has not closed within ``within`` seconds."""
    deadline = time.monotonic() + within
    received = b""
    sock.settimeout(every)
    for piece in pieces:
        if time.monotonic() > deadline:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return received + read_until_closed(sock, 1)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue  # still open: the client keeps trickling
        except ConnectionResetError:
            return received
        received += chunk
        if not chunk:
            return received
        return received + read_until_closed(sock, 1)
    raise TimeoutError(f"the server kept the connection open for {within} s")
