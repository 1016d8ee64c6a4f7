"""What the lease and job queries add to a store section: "now" by the clock their
claims are judged by, and a time some seconds after it.

On SQLite (one machine) "now" is this process's clock, sent as a parameter; on
PostgreSQL it is the server's, so processes on several machines agree.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, bindparam, func

from botkit.store._section import Section
from botkit.store.models import Base, utcnow

__all__ = ["TimedQueries"]

_TIME = Base.metadata.tables["leases"].c.until.type  # every claim's expiry has this type


class TimedQueries(Section):
    """A store section whose rows are claimed until a time."""

    def _now(self) -> Any:
        """SQL for "now" by the clock claims are judged by (see the module docstring)."""
        if self.db.sqlite:
            return bindparam("db_now", utcnow(), type_=_TIME)
        return func.now()

    def _later(self, now: Any, seconds: float) -> Any:
        """SQL for ``seconds`` after ``now``."""
        if self.db.sqlite:
            return bindparam("later", now.value + timedelta(seconds=seconds), type_=now.type)
        return now + bindparam("span", timedelta(seconds=seconds), type_=Interval())
