"""Apple silicon energy from Apple's `powermetrics` tool, which runs as root only.

`PowermetricsSource` ("powermetrics") runs the tool and integrates the power it reports per sample: energy =
sum(power x elapsed time of the sample). It reads the plist output by default (exact millijoules per sample)
or the text output; `parse_powermetrics` and `parse_powermetrics_plist` parse recorded output of either.
Without root, `wattprint.measure.apple.AppleSiliconSource` reads IOReport instead (see there for where the
Neural Engine is charged and what "measured" means on Apple silicon). `subprocess`, `threading` and
`plistlib` are imported when a source is opened or a plist is parsed, never at module import.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from wattprint.errors import PowerSourceError
from wattprint.measure.apple import describe_error, require_apple_silicon
from wattprint.measure.base import Component, Domain, Reading
from wattprint.units import MJ_PER_J

if TYPE_CHECKING:
    import subprocess
    import threading

log = logging.getLogger("wattprint")

MW_PER_W = 1e3  # powermetrics reports power in milliwatts
NS_PER_S = 1e9
MS_PER_S = 1e3
SUDO_FIX = "run with sudo"
PARTS = ("cpu", "gpu", "ane", "dram")  # powermetrics' power rails, in the order domains are listed
PART_COMPONENT: dict[str, Component] = {"cpu": "cpu", "gpu": "gpu", "ane": "gpu", "dram": "ram"}


@dataclass(frozen=True)
class Sample:
    """One powermetrics sample: its length and the average power of each rail over it.

    `power_w` holds the rails reported, by part: "cpu", "gpu", "ane" and, on macOS releases that report
    it, "dram". `combined_w` is powermetrics' own CPU + GPU + ANE sum, where printed (a check, never a
    domain: it would count them twice).
    """

    elapsed_s: float
    power_w: Mapping[str, float] = field(default_factory=dict)
    combined_w: float | None = None

    def energy_j(self) -> dict[str, float]:
        """Joules per rail over the sample."""
        return {part: watts * self.elapsed_s for part, watts in self.power_w.items()}


_HEADER = re.compile(r"^\*\*\* Sampled system activity \((?P<when>.*)\) \((?P<ms>[0-9.]+)\s*ms elapsed\) \*\*\*$")
_RAIL = re.compile(r"^(?P<rail>CPU|GPU|ANE|DRAM) Power:\s*(?P<value>[0-9.]+)\s*(?P<unit>mW|W)$")
_COMBINED = re.compile(r"^Combined Power \(CPU \+ GPU \+ ANE\):\s*(?P<value>[0-9.]+)\s*(?P<unit>mW|W)$")
_HEADER_START = "*** Sampled system activity"


class _Event(NamedTuple):
    """One fact of powermetrics text output, as soon as its line is read: a sample begins ("sample", its
    elapsed seconds), a rail's power ("rail", part, watts), the combined power ("combined", watts), or a
    sample header that could not be read ("bad", the line)."""

    kind: str
    value: float = 0.0
    part: str = ""
    line: str = ""


def _watts(value: str, unit: str) -> float:
    return float(value) / MW_PER_W if unit == "mW" else float(value)


def _text_events(lines: Iterable[str]) -> Iterator[_Event]:
    """The events of text output, line by line. Lines before the first sample header (machine model, OS
    version, boot time) and lines of other samplers are skipped. Within a sample the first value of each
    rail wins: with the gpu_power sampler "GPU Power" is printed twice, among the processor's rails and again
    under "**** GPU usage ****"."""
    in_sample = False
    seen: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if line.startswith(_HEADER_START):
            header = _HEADER.match(line)
            if header is None:
                in_sample = False
                yield _Event("bad", line=line)
                continue
            in_sample, seen = True, set()
            yield _Event("sample", float(header["ms"]) / MS_PER_S)
            continue
        if not in_sample:
            continue
        rail = _RAIL.match(line)
        if rail is not None:
            part = rail["rail"].lower()
            if part not in seen:
                seen.add(part)
                yield _Event("rail", _watts(rail["value"], rail["unit"]), part)
            continue
        combined = _COMBINED.match(line)
        if combined is not None and "combined" not in seen:
            seen.add("combined")
            yield _Event("combined", _watts(combined["value"], combined["unit"]))


def parse_powermetrics(text: str) -> list[Sample]:
    """The samples of `powermetrics` text output (`--samplers cpu_power,gpu_power`), in order.

    A sample opens with "*** Sampled system activity (<date>) (<ms>ms elapsed) ***" and carries lines such as
    "CPU Power: 1234 mW", "GPU Power: 56 mW", "ANE Power: 0 mW" and "Combined Power (CPU + GPU + ANE):
    1290 mW". A sample without rails has an empty `power_w`; a sample header that cannot be read raises
    ValueError.
    """
    starts: list[tuple[float, dict[str, float]]] = []
    combined: list[float | None] = []
    for event in _text_events(text.splitlines()):
        if event.kind == "bad":
            raise ValueError(f"not a powermetrics sample header: {event.line!r}")
        if event.kind == "sample":
            starts.append((event.value, {}))
            combined.append(None)
        elif event.kind == "rail":
            starts[-1][1][event.part] = event.value
        elif event.kind == "combined":
            combined[-1] = event.value
    return [Sample(elapsed, power, total) for (elapsed, power), total in zip(starts, combined, strict=True)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _parse_plist_block(data: bytes) -> Sample:
    """One plist sample. Each rail is taken from `processor.<rail>_energy` (millijoules over the sample) where
    present, else from `processor.<rail>_power` (milliwatts); `gpu.gpu_energy` is the GPU's fallback."""
    import plistlib

    doc = plistlib.loads(data.strip())
    if not isinstance(doc, dict):
        raise ValueError("a powermetrics plist sample is a dictionary")
    elapsed_ns = _number(doc.get("elapsed_ns"))
    if elapsed_ns is None or elapsed_ns <= 0:
        raise ValueError("powermetrics plist sample without a positive elapsed_ns")
    elapsed_s = elapsed_ns / NS_PER_S
    processor = doc.get("processor")
    processor = processor if isinstance(processor, dict) else {}
    gpu = doc.get("gpu")
    gpu = gpu if isinstance(gpu, dict) else {}
    power: dict[str, float] = {}
    for part in PARTS:
        energy_mj = _number(processor.get(f"{part}_energy"))
        if energy_mj is None and part == "gpu":
            energy_mj = _number(gpu.get("gpu_energy"))
        if energy_mj is not None:
            power[part] = energy_mj / MJ_PER_J / elapsed_s
            continue
        power_mw = _number(processor.get(f"{part}_power"))
        if power_mw is not None:
            power[part] = power_mw / MW_PER_W
    combined_mw = _number(processor.get("combined_power"))
    return Sample(elapsed_s, power, None if combined_mw is None else combined_mw / MW_PER_W)


def _plist_blocks(data: bytes) -> list[bytes]:
    """The plist documents of `-f plist` output: powermetrics ends each one with a NUL byte."""
    return [block for block in data.split(b"\x00") if block.strip()]


def parse_powermetrics_plist(data: bytes) -> list[Sample]:
    """The samples of `powermetrics -f plist` output: NUL-separated XML plists whose keys include elapsed_ns
    and processor.cpu_energy / gpu_energy / ane_energy (mJ) or cpu_power / gpu_power / ane_power (mW)."""
    return [_parse_plist_block(block) for block in _plist_blocks(data)]


class PowermetricsSource:
    """Energy of the Apple silicon SoC from a running `powermetrics`, in joules since the source was opened.

    Domains: "powermetrics:cpu" (cpu), "powermetrics:gpu" (gpu), "powermetrics:ane" (gpu: see the module's
    note) and "powermetrics:dram" (ram) where the first sample reports that rail. A background thread reads
    the tool's output and adds each sample's energy as soon as it is printed (plist output: when the sample's
    document is complete; text output: at each rail's line, timed by the sample's header). powermetrics
    prints a sample at its end, so a reading lags the present by up to one sample interval. Opening waits for
    the first sample, about one interval.
    """

    name = "powermetrics"

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        fmt: str = "plist",
        interval_ms: int = 1000,
        system: str | None = None,
        machine: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        start_timeout_s: float = 10.0,
    ) -> None:
        """Start `command` (default: `powermetrics --samplers cpu_power,gpu_power -i <interval_ms>`, plus
        `-f plist` for fmt="plist") and wait for its first sample.

        Raises PowerSourceError: "absent" off macOS on arm64 or where there is no powermetrics, "permission"
        when it is not run as root (fix: run with sudo), "unreadable" when it stops or says nothing in
        `start_timeout_s` seconds.
        """
        if fmt not in ("plist", "text"):
            raise ValueError(f"fmt must be 'plist' or 'text', not {fmt!r}")
        require_apple_silicon(system, machine, "powermetrics")
        argv = ["powermetrics", "--samplers", "cpu_power,gpu_power", "-i", str(int(interval_ms))]
        if fmt == "plist":
            argv += ["-f", "plist"]
        if command is not None:
            argv = list(command)
        import subprocess
        import tempfile
        import threading

        self._fmt = fmt
        self._clock = clock
        self._closed = True
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._totals_j: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self._parts: tuple[str, ...] = ()  # the rails of the first sample, once known: the domains
        self._first_parts: list[str] = []  # the rails of the first sample seen so far
        self._samples = 0
        self._unreadable: list[str] = []  # faults not yet reported by read()
        self._ended = False
        # a file, not a pipe: it can never fill and block the tool; closed by close()
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process: subprocess.Popen[bytes] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,  # a Ctrl-C the training loop handles must not stop the energy source
            )
        except FileNotFoundError:
            self._stderr.close()
            raise PowerSourceError(f"{argv[0]} was not found (it ships with macOS)", reason="absent") from None
        except OSError as exc:
            self._stderr.close()
            raise PowerSourceError(f"{argv[0]} could not be started: {exc}") from None
        self.pid = self._process.pid
        self._closed = False
        self._thread: threading.Thread = threading.Thread(target=self._pump, name="wattprint-powermetrics", daemon=True)
        try:
            self._thread.start()
            self._first.wait(start_timeout_s)
            with self._lock:
                parts, ended = self._parts, self._ended
            if not parts:
                raise self._start_error(ended, start_timeout_s)
        except BaseException:  # Ctrl-C too: never leave powermetrics running; re-raised
            self.close()
            raise
        self._domains: tuple[Domain, ...] = tuple(
            Domain(f"powermetrics:{part}", PART_COMPONENT[part], "measured") for part in parts
        )

    # -- the reader thread ------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Read the tool's output until it ends, adding energy as it arrives."""
        stdout = self._process.stdout
        assert stdout is not None
        try:
            if self._fmt == "plist":
                self._pump_plist(stdout)
            else:
                self._pump_text(stdout)
        except Exception as exc:  # a pipe closed under it at close(), or a fault: the thread ends quietly
            self._fault(f"reading powermetrics failed: {describe_error(exc)}")
        finally:
            with self._lock:
                self._ended = True
            self._publish_parts()
            self._first.set()

    def _pump_plist(self, stdout: IO[bytes]) -> None:
        """Plist output: a sample is complete at the NUL that ends it, and is added whole."""
        buffer = b""
        while chunk := stdout.read1(65536):  # type: ignore[attr-defined]
            buffer += chunk
            *complete, buffer = buffer.split(b"\x00")
            for block in complete:
                if block.strip():
                    self._add_plist(block)
        if buffer.strip():  # the tool stopped after a sample without its NUL
            self._add_plist(buffer)

    def _add_plist(self, block: bytes) -> None:
        try:
            sample = _parse_plist_block(block)
        except Exception as exc:  # malformed or truncated: its energy is missing, and read() says so
            self._fault(f"a sample could not be parsed ({describe_error(exc)})")
            return
        with self._lock:
            for part, joules in sample.energy_j().items():
                self._totals_j[part] += joules
            self._samples += 1
            if not self._parts:
                self._first_parts = [part for part in PARTS if part in sample.power_w]
        self._publish_parts()

    def _pump_text(self, stdout: IO[bytes]) -> None:
        """Text output: the header gives a sample's length, so each rail's energy is added as soon as its line
        is read. The first sample's rails are known at its "Combined Power" line (or at the next sample)."""
        elapsed_s = 0.0
        lines = (raw.decode("utf-8", errors="replace") for raw in stdout)
        for event in _text_events(lines):
            if event.kind == "sample":
                self._publish_parts()
                elapsed_s = event.value
                with self._lock:
                    self._samples += 1
            elif event.kind == "rail":
                with self._lock:
                    self._totals_j[event.part] += event.value * elapsed_s
                    if not self._parts:
                        self._first_parts.append(event.part)
            elif event.kind == "combined":
                self._publish_parts()
            else:  # an unreadable header: the rails that follow cannot be timed
                self._fault(f"a sample header could not be read: {event.line[:120]!r}")

    def _publish_parts(self) -> None:
        """Fix the domains as the first sample's rails, once they are all known."""
        with self._lock:
            if self._parts or not self._first_parts:
                return
            self._parts = tuple(part for part in PARTS if part in self._first_parts)
        self._first.set()

    def _fault(self, message: str) -> None:
        if not self._closed:
            with self._lock:
                self._unreadable.append(message)

    def _start_error(self, ended: bool, timeout_s: float) -> PowerSourceError:
        """Why the first sample gave no rails: not root, the tool failed, it said nothing in time, or it
        reports no rail this source knows."""
        with self._lock:
            samples, faults = self._samples, list(self._unreadable)
        if samples and not faults:
            return PowerSourceError("powermetrics reports no CPU, GPU or ANE power on this Mac", reason="absent")
        if not ended:
            why = f": {'; '.join(faults)}" if faults else ""
            return PowerSourceError(f"powermetrics gave no usable sample within {timeout_s:g} s{why}")
        try:
            code: int | None = self._process.wait(timeout=1.0)
        except Exception:  # still running after its output closed: reported without a code
            code = None
        said = self._stderr_tail()
        if "superuser" in said.lower() or "password is required" in said.lower():
            return PowerSourceError(
                f"powermetrics needs root: {said or 'it refused to run'}", reason="permission", fix=SUDO_FIX
            )
        detail = "; ".join(part for part in (said, *faults) if part) or "no output"
        return PowerSourceError(f"powermetrics stopped (exit code {code}) before its first sample: {detail}")

    def _stderr_tail(self, limit: int = 500) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):  # closed
            return ""
        return text[-limit:]

    # -- the PowerSource contract -------------------------------------------------------------------
    def detail(self) -> str:
        """One line for the record: what is measured and how it is obtained."""
        return "Apple's powermetrics (as root): the SoC's reported power x each sample's elapsed time"

    def domains(self) -> Sequence[Domain]:
        return self._domains

    def read(self) -> Reading:
        """Cumulative joules per rail since open, up to the last complete sample.

        Raises when a sample since the last read could not be parsed (its energy is missing) and then goes
        on; raises on every read once powermetrics has stopped.
        """
        if self._closed:
            raise PowerSourceError("powermetrics source is closed")
        with self._lock:
            totals = {f"powermetrics:{part}": self._totals_j[part] for part in self._parts}
            faults, self._unreadable = self._unreadable, []
            ended = self._ended
        if ended:
            code = self._process.poll()
            said = self._stderr_tail()
            raise PowerSourceError(f"powermetrics stopped (exit code {code}){': ' + said if said else ''}")
        if faults:
            raise PowerSourceError("; ".join(faults))
        return Reading(self._clock(), totals)

    @property
    def samples(self) -> int:
        """How many samples have been added so far."""
        with self._lock:
            return self._samples

    def close(self) -> None:
        """Stop powermetrics (SIGTERM, then SIGKILL after 2 s) and its reader. Safe to call twice; never hangs: a
        tool that will not stop (not ours to signal) is left with a warning, its output pipe to the daemon reader."""
        if self._closed:
            return
        self._closed = True
        import subprocess

        process = self._process
        if process.poll() is None:
            try:
                process.terminate()
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    log.warning("wattprint: powermetrics (pid %d) did not stop", process.pid)
            except OSError as exc:  # already gone, or not ours to signal
                log.debug("stopping powermetrics: %s", exc)
        self._thread.join(timeout=2.0)
        streams: list[IO[bytes] | None] = [self._stderr]
        if not self._thread.is_alive():  # closing a pipe that the reader is blocked on would wait for it forever
            streams.append(process.stdout)
        for stream in streams:
            try:
                if stream is not None:
                    stream.close()
            except OSError as exc:
                log.debug("closing powermetrics output: %s", exc)
