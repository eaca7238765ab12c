"""The request read deadline of `engagehook web`'s gunicorn worker, on a real socket pair."""

from __future__ import annotations

import socket
import time

import pytest

from ingest import gunicorn_worker
from ingest.gunicorn_worker import DeadlineSocket
from ingest.gunicorn_worker import RequestReadTimeout


@pytest.fixture
def pair(monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "REQUEST_READ_SECONDS", 0.3)
    server, client = socket.socketpair()
    yield DeadlineSocket(server), client
    server.close()
    client.close()


def test_a_request_trickled_past_its_deadline_is_cut_off_although_bytes_keep_coming(pair):
    server, client = pair
    began = time.monotonic()
    with pytest.raises(RequestReadTimeout):
        while True:
            client.send(b"a")  # a byte before every read: no single read ever waits long
            assert server.recv(1) == b"a"
            time.sleep(0.05)
    assert 0.25 < time.monotonic() - began < 2


def test_a_silent_client_is_cut_off_at_the_deadline(pair):
    server, _client = pair
    began = time.monotonic()
    with pytest.raises(RequestReadTimeout):
        server.recv(10)
    assert 0.25 < time.monotonic() - began < 2


def test_each_request_on_a_connection_gets_its_own_deadline(pair):
    server, client = pair
    client.send(b"first")
    assert server.recv(5) == b"first"
    time.sleep(0.4)  # past the first request's deadline, as a keep-alive pause would be
    server.begin_request()
    client.send(b"second")
    assert server.recv(6) == b"second"


def test_the_cut_off_is_a_disconnect_to_gunicorn_and_an_os_error_to_the_app():
    from gunicorn.http.errors import NoMoreData

    assert issubclass(RequestReadTimeout, NoMoreData)
    assert issubclass(RequestReadTimeout, OSError)
