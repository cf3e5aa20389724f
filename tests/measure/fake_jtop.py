"""A scripted stand-in for the `jtop` module of jetson-stats, for machines that are not Jetsons.

The real client (rbonghi/jetson_stats, 4.2 to 7.x: jtop/jtop.py, jtop/core/power.py, jtop/core/exceptions.py)
behaves like this where a reader depends on it, and so does the fake:
  - `jtop(interval=1.0)` is a thread object; `start()` connects once (a second start() raises RuntimeError, as
    threading.Thread does) and raises `JtopException` with the service's words when it cannot connect;
    `__enter__` starts, `__exit__` closes; `close()` stops the client;
  - `ok(spin=True)` returns at once: the client's running flag, or it re-raises the client thread's error
    (JtopException("Lost connection with jtop server")) at every call once the service went away;
  - `power` is the service's last sample, rebuilt here at each access while connected and frozen once lost:
    {"rail": {NAME: values}, "tot": values}. An INA3221 rail's values are volt (mV), curr (mA), warn and crit
    (mA), power = int(volt x curr / 1000) (mW), online True and avg (mW, (power + previous avg) // 2); a
    power-supply entry (/sys/class/power_supply) reads its own online flag and status instead of the limits.
    A rail whose files fail to read is left out of that sample. VDD_IN or POM_5V_IN, where present, is taken out
    of "rail" into "tot" with "name" set; otherwise "tot" is {"power": sum, "avg": sum} of the rails. {} when
    the service found no sensor. `legacy=True` gives 4.1's shape instead: a (total, rails) tuple of {cur, avg}.
Tests script the rails (name -> Rail) and stop or start the service between reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOT_ACTIVE = "The jtop.service is not active. Please run:\nsudo systemctl restart jtop.service"
NO_ACCESS = "I can't access jtop.service.\nPlease logout or reboot this board."
LOST = "Lost connection with jtop server"
TOTAL_NAMES = ("POM_5V_IN", "VDD_IN")


class JtopException(Exception):
    """jtop's only exception: the message says what failed."""

    def __init__(self, message: str, errors: str = "") -> None:
        super().__init__(message, errors)
        self.message = message
        self.errors = errors

    def __str__(self) -> str:
        return str(self.message)


@dataclass
class Rail:
    """One sensor as the service reads it. `online` None: an INA3221 channel (always online); a bool: a power
    supply's `online` file. `failing`: its files cannot be read, so the service leaves it out of the sample."""

    volt_mv: int
    curr_ma: int
    online: bool | None = None
    failing: bool = False


class FakeJtopModule:
    """A `jtop`-like module object: `fake.jtop` is the client class, `fake.JtopException` its exception."""

    JtopException = JtopException
    __version__ = "4.2.12"

    def __init__(self, rails: dict[str, Rail], *, legacy: bool = False) -> None:
        self.rails = rails
        self.legacy = legacy
        self.service_up = True
        self.member = True  # whether this user is in the jtop group
        self.epoch = 0  # bumped at each service stop: clients of an older epoch have lost their connection
        self.clients: list[Any] = []
        self._avg: dict[str, int] = {}
        board = self

        class jtop(_FakeClient):  # noqa: N801 - the real class's name
            _board = board

        self.jtop = jtop

    def stop_service(self) -> None:
        self.service_up = False
        self.epoch += 1
        self._avg = {}

    def start_service(self) -> None:
        self.service_up = True

    def set_power(self, name: str, milliwatts: int, volt_mv: int = 5000) -> None:
        """Script a rail so that it reads `milliwatts` (current rounded to a whole mA, as the driver gives)."""
        self.rails[name].volt_mv, self.rails[name].curr_ma = volt_mv, milliwatts * 1000 // volt_mv

    def status(self) -> Any:
        """What the service's power reader returns for one sample (PowerService.get_status)."""
        rails: dict[str, dict[str, Any]] = {}
        for name, rail in sorted(self.rails.items()):
            if rail.failing:
                continue
            values: dict[str, Any] = {"volt": rail.volt_mv, "curr": rail.curr_ma}
            if rail.online is None:
                values |= {"warn": 32760, "crit": 32760}
            else:
                values["online"], values["status"] = rail.online, "Charging" if rail.online else "Not charging"
            values["power"] = int(rail.volt_mv * (float(rail.curr_ma) / 1000))
            values.setdefault("online", True)
            values["avg"] = (values["power"] + self._avg[name]) // 2 if name in self._avg else values["power"]
            self._avg[name] = values["avg"]
            rails[name] = values
        if not rails:
            return {}
        if self.legacy:
            cur = {name: {"cur": v["power"], "avg": v["avg"]} for name, v in rails.items()}
            return {"cur": sum(v["power"] for v in rails.values()), "avg": sum(v["avg"] for v in rails.values())}, cur
        for total_name in TOTAL_NAMES:
            if total_name in rails:
                total = rails.pop(total_name)
                total["name"] = total_name
                return {"rail": rails, "tot": total}
        total = {"power": sum(v["power"] for v in rails.values()), "avg": sum(v["avg"] for v in rails.values())}
        return {"rail": rails, "tot": total}


class _FakeClient:
    """The client: the board it talks to is the class attribute `_board`."""

    _board: FakeJtopModule

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = float(interval)
        self._started = False
        self._running = False
        self._epoch = -1
        self._power: Any = None
        self.closes = 0
        self._board.clients.append(self)

    def start(self) -> None:
        if self._started:
            raise RuntimeError("threads can only be started once")
        board = self._board
        if not board.service_up:
            raise JtopException(NOT_ACTIVE)
        if not board.member:
            raise JtopException(NO_ACCESS)
        self._started, self._running, self._epoch = True, True, board.epoch
        self._power = board.status()

    def _lost(self) -> bool:
        return self._started and self._epoch != self._board.epoch

    def ok(self, spin: bool = False) -> bool:
        if self._lost():
            raise JtopException(LOST)
        return self._running

    @property
    def power(self) -> Any:
        if self._power is None:
            raise KeyError("power")  # self._stats['power'] before the first data
        if self._running and not self._lost():
            self._power = self._board.status()
        return self._power

    def close(self) -> None:
        self.closes += 1
        self._running = False

    def __enter__(self) -> _FakeClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def orin_nx() -> dict[str, Rail]:
    """Orin NX / Nano (p3767): one INA3221, VDD_IN 10 W, VDD_CPU_GPU_CV 5 W, VDD_SOC 2 W."""
    return {"VDD_IN": Rail(5000, 2000), "VDD_CPU_GPU_CV": Rail(5000, 1000), "VDD_SOC": Rail(5000, 400)}


def agx_orin() -> dict[str, Rail]:
    """AGX Orin (p3701): two INA3221 and no VDD_IN rail, so "tot" is the service's sum; plus a USB-C supply
    that is not connected."""
    return {
        "VDD_GPU_SOC": Rail(19000, 500),
        "VDD_CPU_CV": Rail(19000, 250),
        "VIN_SYS_5V0": Rail(5000, 600),
        "VDDQ_VDD2_1V8AO": Rail(5000, 100),
        "USBC000:001": Rail(5000, 0, online=False),
    }
