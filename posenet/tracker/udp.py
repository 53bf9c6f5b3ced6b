"""Opentrack's "UDP over network" input protocol: one datagram of six little-endian doubles.

The packet is (x, y, z, yaw, pitch, roll): position in centimetres, angles in degrees, in
Opentrack's own axes, which its neuralnet tracker produces from the camera frame as
TX = x, TY = -y (up is positive), TZ = z (distance from the camera). Yaw, pitch and roll are
our reporting angles (`geometry.ypr_deg`); their signs match Opentrack's tracker (checked
against its `image_to_world` and `data()` formulas), its Euler decomposition differs by
under a degree at moderate angles.
"""

from __future__ import annotations

import socket
import struct
from typing import Sequence

import numpy as np

from posenet.core.errors import PosenetError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4242
PACKET = struct.Struct("<6d")
MM_PER_CM = 10.0


def parse_address(text: str | None) -> tuple[str, int]:
    """"HOST:PORT", "HOST", ":PORT" or None -> (host, port), defaults 127.0.0.1:4242."""
    if not text:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise PosenetError(f"--udp {text}: expected HOST:PORT with a port in 1..65535")
    return host or DEFAULT_HOST, number


def opentrack_values(position_mm: Sequence[float], ypr_deg: Sequence[float]) -> tuple[float, ...]:
    """Camera-frame head position (mm, y down) and (yaw, pitch, roll) deg -> the six packet values."""
    x, y, z = np.asarray(position_mm, dtype=np.float64) / MM_PER_CM
    yaw, pitch, roll = (float(a) for a in ypr_deg)
    return float(x), float(-y), float(z), yaw, pitch, roll


def pack(values: Sequence[float]) -> bytes:
    return PACKET.pack(*(float(v) for v in values))


def unpack(packet: bytes) -> tuple[float, ...]:
    if len(packet) != PACKET.size:
        raise ValueError(f"Opentrack UDP packet has {len(packet)} bytes, expected {PACKET.size}")
    return PACKET.unpack(packet)


class OpentrackSender:
    """Sends poses to Opentrack's UDP input (fire and forget: a closed port is not an error)."""

    def __init__(self, address: tuple[str, int] = (DEFAULT_HOST, DEFAULT_PORT)):
        self.address = address
        self.sent = 0
        self.dropped = 0  # poses not sent because a value was not finite
        try:
            family = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_DGRAM)[0][0]
        except socket.gaierror as error:
            raise PosenetError(f"--udp {address[0]}:{address[1]}: unknown host ({error.strerror})") from None
        self._socket = socket.socket(family, socket.SOCK_DGRAM)

    def send(self, values: Sequence[float]) -> None:
        """Send one pose; a pose with a non-finite value is dropped (Opentrack would take it as a real pose)."""
        if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
            self.dropped += 1
            return
        try:
            self._socket.sendto(pack(values), self.address)
            self.sent += 1
        except OSError:  # nobody listening (ICMP port unreachable) must not stop tracking
            pass

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> "OpentrackSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
