"""Where an exec'd process sits inside its container's pid namespace, read from the engine host's /proc.

Docker has no call to signal an exec'd process, and ending the exec's connection does not end
the process (measured on Engine 20.10: it keeps running). Its `exec inspect` gives the pid as
the engine sees it, in the host's pid namespace, while a `kill` run inside the container needs
the pid in the container's namespace. Only the host's /proc knows both: the `NSpid` line of
/proc/<pid>/status lists the pid in every namespace from the host's down to the container's.

That is readable only where the agent sees the engine's processes (a local engine, the agent in
the host pid namespace). The process is checked to belong to the container (its cgroup names the
container id) so a pid reused meanwhile, or a /proc of another namespace, is never acted on:
`locate` answers None then, and the caller reports that it could not end the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Target:
    """An exec'd process as a `kill` inside its container must name it."""

    pid: int  # in the container's pid namespace
    group: bool  # it leads its process group (runc makes an exec'd process a session leader)

    def kill_command(self, signal: str = "KILL") -> list[str]:
        """`kill` for a second exec: the whole group when it leads one, so `sh -c` takes its children along."""
        return ["kill", f"-{signal}", f"-{self.pid}" if self.group else str(self.pid)]


def parse_nspid(status: str) -> list[int]:
    """The `NSpid:` pids of a /proc/<pid>/status text, outermost namespace first ([] if absent)."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return [int(part) for part in line.split()[1:]]
    return []


def parse_pgrp(stat: str) -> int:
    """The process group of a /proc/<pid>/stat line (the command name in parentheses may hold anything)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[2])  # state, ppid, pgrp, ...


def locate(pid: int, container_id: str, *, proc: Path = PROC) -> Target | None:
    """The process `pid` (host namespace) as seen inside container `container_id`, if it is one of its."""
    if pid <= 0 or not container_id:
        return None
    base = proc / str(pid)
    try:
        cgroup = (base / "cgroup").read_text()
        status = (base / "status").read_text()
        stat = (base / "stat").read_text()
    except OSError:
        return None
    if container_id not in cgroup:
        return None
    try:
        nspids, pgrp = parse_nspid(status), parse_pgrp(stat)
    except (ValueError, IndexError):
        return None
    if not nspids or nspids[0] != pid:
        return None  # this /proc is not the engine host's
    return Target(pid=nspids[-1], group=pgrp == pid)
