"""The host side of a serving workload: client commands run on the host against an instance.

The client binaries come from the guest image's root (chroot), so client and server
are the same builds in every runtime, and the host needs no benchmark packages.
The chroot keeps the host's network namespace: 127.0.0.1 is the host's loopback.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.errors import RuntimeFailure

# A forward that is set up before the server listens (QEMU's hostfwd, docker-proxy)
# accepts and then drops the connection: such a round is tried again.
_NOT_LISTENING = ("connection refused", "unable to connect", "connection reset",
                  "could not connect", "unable to receive control message",
                  "closed unexpectedly")
RETRY_PAUSE_S = 0.2


def run_round(root: Path, command: str, deadline: float, refused=None,
              retry_for_s: float = 10.0) -> str:
    """Output of `sh -c command` run in root; retried while the server does not answer yet."""
    refused = refused or connection_refused
    retry_until = time.monotonic() + retry_for_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeFailure(f"host client timed out: {command}")
        try:
            result = subprocess.run(["chroot", str(root), "sh", "-c", command], capture_output=True,
                                    text=True, timeout=remaining)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"host client did not finish in time: {command}") from None
        output = result.stdout + result.stderr
        if not refused(output):
            if result.returncode != 0 and not output.strip():
                raise RuntimeFailure(f"host client exit {result.returncode}: {command}")
            return output
        if time.monotonic() > retry_until:
            # The instance will not print its next SERVING line: stop here, with the reason
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise RuntimeFailure(f"the server in the instance never answered {command}: {tail}")
        time.sleep(RETRY_PAUSE_S)


def connection_refused(output: str) -> bool:
    """The client could not reach a listening server (so nothing was measured)."""
    lowered = output.lower()
    return any(sign in lowered for sign in _NOT_LISTENING)


def free_port() -> int:
    """A TCP port free on the host's loopback now (the kernel picks it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
