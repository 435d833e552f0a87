"""The demo's tests run offline: proxies lead nowhere, Hugging Face is off, and any
connection beyond this machine fails the test that makes it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class OfflineViolation(AssertionError):
    pass


@pytest.fixture(scope="package", autouse=True)
def offline() -> Iterator[list[Any]]:
    # Package scope: the demo's tests run offline, and the proxy settings that enforce it
    # must not outlive them into another package's tests on the same worker.
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _offline(monkeypatch)


def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.setenv(name, "http://192.0.2.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost,::1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    refused: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            refused.append(address)
            raise OfflineViolation(f"the demo tried to reach {address}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield refused
    assert not refused, f"connections beyond this machine: {refused}"
