"""Restarting the machine's PostgreSQL cluster, and making sure it runs again."""

from __future__ import annotations

import os
import subprocess

__all__ = ["ensure_postgres_running", "restart_postgres"]


def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster (``pg_ctlcluster ... restart``)."""
    _pg_ctl("restart")


def ensure_postgres_running() -> None:
    """Start the local PostgreSQL cluster if it is not running (teardown safety net)."""
    status = _pg_ctl("status", check=False)
    if status != 0:
        _pg_ctl("start")


def _pg_ctl(action: str, *, check: bool = True) -> int:
    versions = sorted(os.listdir("/etc/postgresql"))
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pg_ctlcluster {action} failed: {result.stderr.decode()}")
    return result.returncode
