"""PackML machine states and unit modes, by the numbers PLCs publish.

State numbers are PackTags ``Status.StateCurrent`` (ISA-TR88.00.02, used unchanged by the
PackML OPC UA companion specification, OPC 30050); unit modes are ``Status.UnitModeCurrent``
(1–3 defined by the standard; the rest are the machine builder's). Shared by the ``line_plc``
profile and the simulated line PLC (``firmware-sim/line_plc.py``).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ACTING_STATES", "PackMLState", "mode_name", "state_name"]


class PackMLState(IntEnum):
    UNDEFINED = 0
    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17

    @property
    def label(self) -> str:
        """The state's name as OPC 30050 writes it (``Execute``, ``Held``, …)."""
        return self.name.capitalize()


#: Transient ("acting") states: the machine leaves them by itself when their action is done.
ACTING_STATES = frozenset(
    {
        PackMLState.CLEARING,
        PackMLState.STARTING,
        PackMLState.STOPPING,
        PackMLState.ABORTING,
        PackMLState.HOLDING,
        PackMLState.UNHOLDING,
        PackMLState.SUSPENDING,
        PackMLState.UNSUSPENDING,
        PackMLState.RESETTING,
        PackMLState.COMPLETING,
    }
)

_MODES = {0: "Invalid", 1: "Production", 2: "Maintenance", 3: "Manual"}


def state_name(number: int) -> str:
    """``Execute`` for 6; ``State 42`` for a number PackML does not define."""
    try:
        return PackMLState(number).label
    except ValueError:
        return f"State {number}"


def mode_name(number: int) -> str:
    """``Production`` for 1; ``Mode 5`` for a machine builder's own mode."""
    return _MODES.get(number, f"Mode {number}")
