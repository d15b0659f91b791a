"""Every distributed role as a real `tributary serve` process, for fault tests: start, kill, restart, and measure
what the processes did (CPU time from /proc, log lines)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.processes import free_port, serve, tributary_env, wait_ready
from tributary.settings import Settings

ROLES = ("command-api", "query-api", "applier", "projector")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Cluster:
    settings: Settings
    logs: Path
    ports: dict[str, int] = field(default_factory=lambda: {role: free_port() for role in ROLES})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, role: str) -> Path:
        return self.logs / f"{role}.log"

    def url(self, role: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}"

    def start(self, role: str) -> None:
        # Static membership: a restarted applier takes its partitions back at once.
        extra = {"TRIBUTARY_INSTANCE_ID": "applier-0"} if role == "applier" else {}
        self.processes[role] = serve(
            role, tributary_env(self.settings, **extra), self.log(role), port=self.ports[role]
        )

    def wait_ready(self, role: str, timeout: float = 180) -> float:
        """Seconds until the role's /readyz answered 200."""
        began = time.monotonic()
        wait_ready(self.ports[role], self.processes[role], self.log(role), timeout=timeout)
        return time.monotonic() - began

    def start_all(self) -> None:
        # The projector first: a query API waits (a while) for the catalog to cover the event log.
        for role in ("projector", "applier", "command-api", "query-api"):
            self.start(role)
        for role in ROLES:
            self.wait_ready(role)

    def signal(self, role: str, sig: signal.Signals, timeout: float = 60) -> int:
        """Send `sig` and wait for the process to end; its exit code."""
        process = self.processes[role]
        process.send_signal(sig)
        return process.wait(timeout=timeout)

    def readiness(self, role: str) -> tuple[int, str]:
        try:
            answer = httpx.get(f"{self.url(role)}/readyz", timeout=5)
        except httpx.TransportError as exc:
            return 0, type(exc).__name__
        return answer.status_code, answer.text

    def cpu_seconds(self) -> dict[str, float]:
        """User and system CPU time of each role's process so far."""
        used = {}
        for role, process in self.processes.items():
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            # After the ")" of the command: state is field 3, utime and stime fields 14 and 15.
            used[role] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return used

    def log_sizes(self) -> dict[str, int]:
        return {role: self.log(role).stat().st_size for role in ROLES}

    def most_repeated_lines(self, since: dict[str, int]) -> dict[str, tuple[int, str]]:
        """Per role, the log line (timestamp cut off) written most often since the offsets `since`."""
        most = {}
        for role in ROLES:
            with self.log(role).open("rb") as log:
                log.seek(since[role])
                lines = log.read().decode(errors="replace").splitlines()
            counts = collections.Counter(_message(line) for line in lines if line.strip())
            most[role] = counts.most_common(1)[0][::-1] if counts else (0, "")
        return most

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


def _message(line: str) -> str:
    # "2026-11-27 10:53:09,123 WARNING name: message": the message without its time.
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 and parts[0][:2] == "20" else line
