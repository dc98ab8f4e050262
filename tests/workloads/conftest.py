"""Shared fixtures of the workload tests."""

import socket

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every workload test fails if a workload opens a network connection (no downloads)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a workload tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
