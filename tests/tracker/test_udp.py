"""Opentrack's UDP input protocol: packet layout, addresses, and real datagrams on a local socket."""

from __future__ import annotations

import socket

import pytest

from posenet.core.errors import PosenetError
from posenet.tracker.udp import PACKET, OpentrackSender, opentrack_values, pack, parse_address, unpack


@pytest.fixture()
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def test_packet_is_six_little_endian_doubles():
    packet = pack([1.5, -2.0, 60.0, 10.0, -5.0, 2.5])
    assert len(packet) == 48 and PACKET.format == "<6d"
    assert packet[:8] == bytes.fromhex("000000000000f83f")  # 1.5, little-endian
    assert unpack(packet) == (1.5, -2.0, 60.0, 10.0, -5.0, 2.5)
    with pytest.raises(ValueError):
        unpack(packet[:40])


def test_sender_packets_arrive_and_decode(receiver):
    address = receiver.getsockname()
    values = opentrack_values([12.0, 34.0, 567.0], [20.0, -10.0, 5.0])
    with OpentrackSender(address) as sender:
        sender.send(values)
        sender.send([0, 0, 0, 0, 0, 0])
    assert unpack(receiver.recv(1024)) == pytest.approx((1.2, -3.4, 56.7, 20.0, -10.0, 5.0))
    assert unpack(receiver.recv(1024)) == (0.0,) * 6
    assert sender.sent == 2


def test_sender_drops_non_finite_poses(receiver):
    """Opentrack would apply a NaN or infinite position as a real pose: such a pose is not sent."""
    with OpentrackSender(receiver.getsockname()) as sender:
        sender.send([float("nan"), 0, 60, 0, 0, 0])
        sender.send([0, 0, float("inf"), 0, 0, 0])
        sender.send([1, 2, 3, 4, 5, 6])
    assert unpack(receiver.recv(1024)) == (1, 2, 3, 4, 5, 6)  # the first datagram is the finite pose
    assert sender.sent == 1 and sender.dropped == 2


def test_sender_without_listener_does_not_fail():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    address = probe.getsockname()
    probe.close()  # nothing listens there now
    with OpentrackSender(address) as sender:
        for _ in range(3):
            sender.send([1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize("text, expected", [
    (None, ("127.0.0.1", 4242)), ("", ("127.0.0.1", 4242)), ("10.0.0.2:5000", ("10.0.0.2", 5000)),
    ("myhost", ("myhost", 4242)), (":4343", ("127.0.0.1", 4343)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:abc", "host:0", "host:70000"])
def test_parse_address_rejects_bad_ports(text):
    with pytest.raises(PosenetError, match="--udp"):
        parse_address(text)
