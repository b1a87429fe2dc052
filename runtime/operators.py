"""Streaming operators (pypz): start every operator step of a run together, one process per
replica, drive each operator's lifecycle, and supervise them.

Lifecycle of one replica (a process, ``FLOWC_REPLICA``/``FLOWC_REPLICAS`` in its environment):

1. the user's class is built with the step's ``with:`` as keyword arguments (a constructor
   parameter missing from ``with:`` but named like a pipeline param takes that param: the
   pipeline -> operator cascade; ``ctx`` gets the step context);
2. ``self.ports[CHANNEL]`` is set for every produced / consumed channel (the channel's
   ``location`` reaches every port on it);
3. ``on_init()`` (called again while it returns ``False``), then ``on_running()`` until it returns
   ``True`` or returns ``None`` while every consumed port is ``done`` (an operator without
   consumed ports that returns ``None`` finishes); the records retrieved during one
   ``on_running`` call are acknowledged once it returns;
4. ``on_shutdown()``; its output ports are closed and it is marked finished.

``on_interrupt(signal)`` is called on SIGTERM / SIGINT (the replica then stops), ``on_error(exc)``
when a hook raises. When one replica fails, the others are interrupted and
:func:`run_operators` raises :class:`OperatorError` with the first error. pypz spellings
(``_on_init`` ...) are accepted too. Hooks are optional.

The parts: :mod:`.operator_base` (the base class, errors, shared helpers),
:mod:`.operator_replica` (one replica's process) and :mod:`.operator_supervisor` (the parent);
their public names are re-exported here, and ``python -m flowc.runtime.operators`` runs a replica.
"""

from __future__ import annotations

import sys

from flowc.runtime.operator_base import (
    GRACE_SECONDS,
    HOOKS,
    Interrupted,
    Operator,
    OperatorError,
    OptionalParameter,
    Parameter,
    RequiredParameter,
    channel_db,
    channel_spec,
    constructor_parameters,
    declared_parameters,
    load_class,
    operator_signature,
    replicas_of,
    run_dir_of,
)
from flowc.runtime.operator_replica import child_main, run_replica
from flowc.runtime.operator_supervisor import interrupt_all, run_operators

__all__ = [
    "GRACE_SECONDS",
    "HOOKS",
    "Interrupted",
    "Operator",
    "OperatorError",
    "OptionalParameter",
    "Parameter",
    "RequiredParameter",
    "channel_db",
    "channel_spec",
    "child_main",
    "constructor_parameters",
    "declared_parameters",
    "interrupt_all",
    "load_class",
    "operator_signature",
    "replicas_of",
    "run_dir_of",
    "run_operators",
    "run_replica",
]

if __name__ == "__main__":
    sys.exit(child_main())
