"""NVIDIA Jetson board energy through jetson-stats' jtop service, for users who cannot read the rails in sysfs.

The INA3221 rails that JetsonSource (jetson.py) reads from sysfs are often readable by root only. jetson-stats
(PyPI: jetson-stats, import name `jtop`) runs a root service, jtop.service, that reads them and serves each
member of the `jtop` group over /run/jtop.sock; this source is its client. What it relies on (jetson-stats 4.2
up to 7.x; 3.x to 4.1 returned a (total, rails) tuple of {"cur", "avg"} from `power` and are not supported):
  jtop.jtop(): a client thread. start() connects and waits for the first data; it raises jtop.JtopException
      ("The jtop.service is not active. ...") when the socket is missing or refuses, or ("I can't access
      jtop.service. ...") when this user may not connect. ok(spin=True) returns at once: False once the client
      stopped; it re-raises the client thread's error (JtopException "Lost connection with jtop server") for
      good once the service went away, so a lost client is replaced by a new one. close() stops the client.
  jtop().power: the service's last sample, {"rail": {NAME: {"online": bool, "power": mW, "volt": mV,
      "curr": mA, "avg": mW, ...}}, "tot": {...}}; "tot" is VDD_IN or POM_5V_IN taken out of "rail" (with
      "name" set to it), else the sum of the rails (no "name"); {} where the service found no sensor.
Rails are classified as in jetson.py; a named "tot" is detail only, an unnamed one (a sum) is skipped, and so
are rails offline at open (a known rail offline later draws 0 W). Each read() integrates the power samples over
the source's `clock` with the trapezoidal rule, as JetsonSource does; `jtop` is imported when a source is opened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Domain, Reading
from wattprint.measure.jetson import classify

JTOP_FIX = "pip install 'wattprint[jetson]'"
SERVICE_FIX = "sudo systemctl start jtop.service"
GROUP_FIX = "sudo usermod -aG jtop $USER, then log in again"
UPGRADE_FIX = "sudo pip3 install -U jetson-stats, then sudo systemctl restart jtop.service"
RECONNECT_S = 10.0  # a new client runs jetson-stats' library probes (dpkg, nvcc...) in a thread: not every read
MW_PER_W = 1e3
TOT = None  # the rail key of the "tot" entry


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _connect(module: Any) -> Any:
    """A started jtop client, or PowerSourceError saying why the service cannot be reached."""
    client = module.jtop()
    try:
        client.start()
    except Exception as exc:  # JtopException, or an OSError or queue.Empty from the connection
        with contextlib.suppress(Exception):
            client.close()
        jtop_error = isinstance(exc, getattr(module, "JtopException", ()))
        text = " ".join(str(exc).split()) if jtop_error else _describe(exc)
        reason, fix = "unreadable", None
        if jtop_error and "can't access" in text:
            reason, fix = "permission", GROUP_FIX
        elif jtop_error and "not active" in text:
            fix = SERVICE_FIX
        raise PowerSourceError(f"jtop service not reachable: {text}", reason=reason, fix=fix) from None
    return client


def _entry(power: Any, rail: str | None) -> Mapping[str, Any]:
    entry = power.get("tot") if rail is TOT else power.get("rail", {}).get(rail)
    if not isinstance(entry, Mapping) or (rail is TOT and "name" not in entry):
        raise PowerSourceError(f"jtop reports no rail {rail or 'tot'} in this sample")
    return entry


def _watts(power: Any, rail: str | None) -> float:
    """A rail's power in this sample: 0 while offline, negative values (noise at idle) as 0."""
    entry = _entry(power, rail)
    if entry.get("online") is False:
        return 0.0
    value = entry.get("power")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PowerSourceError(f"jtop rail {rail or entry.get('name')}: power is not a number: {value!r}")
    return max(0.0, value / MW_PER_W)


class JtopSource:
    """Measured energy of every Jetson rail that the jtop service reports, in joules since the source was opened."""

    name = "jtop"

    def __init__(self, module: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        """Connect to jtop.service through `module` (jtop, imported now when None). Raises PowerSourceError:
        "missing-library" without jetson-stats, "permission" outside the jtop group, "unreadable" when the
        service is not running or too old, "absent" when it reports no rail."""
        if module is None:
            try:
                import jtop
            except ImportError:
                raise PowerSourceError(
                    "jetson-stats is not installed: its jtop service reads the Jetson power rails",
                    reason="missing-library",
                    fix=JTOP_FIX,
                ) from None
            module = jtop
        self._module, self._clock, self._closed = module, clock, False
        self._client: Any = _connect(module)
        try:
            power = self._client.power
            if not isinstance(power, Mapping):
                raise PowerSourceError(
                    f"jtop returned power as {type(power).__name__}: jetson-stats 4.2 or later is needed",
                    fix=UPGRADE_FIX,
                )
            rails = power.get("rail", {})
            self._keys: list[str | None] = [name for name, entry in rails.items() if entry.get("online", True)]
            if isinstance(power.get("tot"), Mapping) and "name" in power["tot"]:
                self._keys.append(TOT)
            if not self._keys:
                raise PowerSourceError("the jtop service reports no online power rail", reason="absent")
            self._domains = tuple(self._domain(power, key) for key in self._keys)
            self._last_w = [_watts(power, key) for key in self._keys]
            self._total_j = [0.0] * len(self._keys)
            self._last_t = self._retry_at = self._clock()
        except BaseException:  # Ctrl-C too: stop the client; re-raised
            self.close()
            raise

    @staticmethod
    def _domain(power: Any, key: str | None) -> Domain:
        label = str(power["tot"]["name"]) if key is TOT else key
        component, counted = classify(label or "")
        return Domain(f"jetson:{(label or '').lower()}", component, "measured", counted and key is not TOT)

    def domains(self) -> Sequence[Domain]:
        """One domain per rail: "jetson:vdd_in" (detail only), "jetson:vdd_cpu_gpu_cv", "jetson:vdd_soc", ..."""
        return self._domains

    def detail(self) -> str:
        """One line for the record: what is measured and how."""
        names = ", ".join(domain.name.removeprefix("jetson:").upper() for domain in self._domains)
        return f"Jetson power rails {names} from the jtop service: power sampled at each read, integrated (trapezoid)"

    def _sample(self) -> Any:
        """The service's latest power dict; a lost client is dropped and replaced at most every RECONNECT_S."""
        if self._client is None:
            now = self._clock()
            if now < self._retry_at:
                raise PowerSourceError(f"jtop connection lost; next attempt in {self._retry_at - now:.0f} s")
            self._retry_at = now + RECONNECT_S
            self._client = _connect(self._module)
        try:
            running, error = bool(self._client.ok(spin=True)), "the jtop client stopped"
        except Exception as exc:  # the client thread's error, re-raised by ok(): this client is done
            running, error = False, _describe(exc)
        if not running:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                client.close()
            raise PowerSourceError(f"jtop connection lost: {error}")
        try:
            power = self._client.power
        except Exception as exc:
            raise PowerSourceError(f"jtop power unreadable: {_describe(exc)}") from None
        if not isinstance(power, Mapping):
            raise PowerSourceError(f"jtop power is a {type(power).__name__}, not a dict")
        return power

    def read(self) -> Reading:
        """Cumulative joules per rail since open. A failed read raises PowerSourceError and changes nothing:
        the next good one integrates the whole gap from the last good sample."""
        if self._closed:
            raise PowerSourceError("jtop source is closed")
        power = self._sample()
        samples = [_watts(power, key) for key in self._keys]
        now = self._clock()
        dt_s = max(0.0, now - self._last_t)
        for index, watts in enumerate(samples):
            self._total_j[index] += (self._last_w[index] + watts) / 2 * dt_s
        self._last_w, self._last_t = samples, now
        return Reading(now, {domain.name: joules for domain, joules in zip(self._domains, self._total_j, strict=True)})

    def close(self) -> None:
        """Stop the jtop client. Safe to call twice."""
        self._closed = True
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            with contextlib.suppress(Exception):  # the service may be gone already
                client.close()
