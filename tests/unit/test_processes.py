"""Free ports come from below the kernel's ephemeral range, so a port-0 bind can never take one first."""

from __future__ import annotations

import socket
from pathlib import Path

from local.processes import free_port


def test_free_ports_lie_below_the_ephemeral_range_and_can_be_bound():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    assert all(1024 <= port < low for port in ports)
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports[0]))
        server.listen()
        kernel_chosen = []
        for _ in range(50):
            other = socket.socket()
            other.bind(("127.0.0.1", 0))
            kernel_chosen.append(other)
        try:
            assert all(s.getsockname()[1] >= low for s in kernel_chosen)
        finally:
            for s in kernel_chosen:
                s.close()
