"""Workflows: tasks that run after other tasks' outcomes (the ``after`` field).

:mod:`~scheduler.dependencies.after` is the field; :mod:`~scheduler.dependencies.graph`
checks the links between tasks (unknown ids, cycles, dependants of a removed task) and
draws them; :mod:`~scheduler.dependencies.follow` records upstream outcomes and queues the
downstream runs, in the transaction that writes the upstream's final status.
"""

from scheduler.dependencies.after import After

__all__ = ["After"]
