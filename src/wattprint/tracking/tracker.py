"""The Tracker: monitor + carbon + store, as a context manager, a decorator or start()/stop().

    with wattprint.track("train") as t:
        train()
        t.log(accuracy=0.97)
    print(t.record.energy_kwh.total)

The tracker never raises into the tracked code once started: faults of power sources, of the
store or of the sampler are logged and flagged on the record (`degraded`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import psutil

from wattprint import __version__
from wattprint.config import Settings, load_settings
from wattprint.errors import TrackerNotStartedError, WattprintInputError
from wattprint.intensity.static import WORLD_REGION, StaticProvider
from wattprint.measure.base import COMPONENTS, ProcessListing
from wattprint.measure.detect import SourceChoice, sources_for
from wattprint.measure.monitor import EnergyMonitor, WindowResult
from wattprint.measure.process import ProcessTree
from wattprint.tracking import exit_hooks
from wattprint.tracking.carbon import RunCarbon
from wattprint.tracking.launch import in_process_group, launched_rank
from wattprint.units import joules_to_kwh

if TYPE_CHECKING:
    from wattprint.record import RunRecord, Status
    from wattprint.tracking.distributed import DistributedTracker

log = logging.getLogger("wattprint")
F = TypeVar("F", bound=Callable[..., Any])
# Tracker arguments that DistributedTracker has no use for: given one, a rank keeps a plain tracker
_PLAIN_ONLY = ("pid", "command", "sources", "run_id")

GPU_PROCESS_CHECK_EVERY = 10  # at most this many samples between NVML process listings


# a power point over less than this x the sampling interval is left out of the record's timeline
TIMELINE_MIN_DT_FRACTION = 0.2


def timeline_points(
    points: Sequence[tuple[float, float, float, float]], interval_s: float
) -> list[tuple[float, float, float, float]]:
    """The monitor's (t, cpu W, gpu W, ram W) points with intervals far shorter than the sampling interval
    merged into the following one, energy-weighted: a window's fresh sample comes moments after a tick, and
    its power over a millisecond is noise (the CPU-time model reads 0 W there), which drew a drop to 0 W at
    every window edge. What is left at the end joins the last point; a run shorter than that keeps one."""
    kept: list[tuple[float, float, float, float]] = []
    kept_dt: list[float] = []
    span, joules, previous_t = 0.0, [0.0, 0.0, 0.0], 0.0
    for t, *watts in points:
        dt = max(t - previous_t, 0.0)
        previous_t = t
        span += dt
        joules = [j + w * dt for j, w in zip(joules, watts, strict=True)]
        if span >= TIMELINE_MIN_DT_FRACTION * interval_s:
            kept.append((t, *(j / span for j in joules)))  # type: ignore[arg-type]
            kept_dt.append(span)
            span, joules = 0.0, [0.0, 0.0, 0.0]
    if span > 0:
        if kept:  # the remainder joins the last point, which then ends where the timeline ends
            last_span = kept_dt[-1]
            merged = [(w * last_span + j) / (last_span + span) for w, j in zip(kept[-1][1:], joules, strict=True)]
            kept[-1] = (previous_t, *merged)  # type: ignore[assignment]
        else:
            kept.append((previous_t, *(j / span for j in joules)))  # type: ignore[arg-type]
    return kept


class Tracker:
    """Tracks the energy and carbon of a process tree (by default this process), or of a cgroup, over a run."""

    def __init__(
        self,
        name: str = "run",
        *,
        pid: int | None = None,
        cgroup: str | os.PathLike[str] | None = None,
        command: Sequence[str] | None = None,
        settings: Settings | None = None,
        store: Any = None,
        sources: SourceChoice | None = None,
        run_id: str | None = None,
        **overrides: Any,
    ) -> None:
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise WattprintInputError("run_id", f"got {run_id!r}; expected a non-empty string")
        if not isinstance(name, str) or not name.strip():
            raise WattprintInputError("name", f"got {name!r}; expected a non-empty string")
        self.run_id = run_id
        self.cgroup: Any = None
        if cgroup is not None:  # a Slurm job, a container, a pod: its cgroup's CPU time instead of a tree's
            if pid is not None:
                raise WattprintInputError("cgroup", "give a pid or a cgroup, not both")
            from wattprint.measure.cgroup import CgroupTree

            self.cgroup = CgroupTree(cgroup)  # checked now: a wrong path fails before anything runs
        self.name = name
        self.settings = settings if settings is not None else load_settings(**overrides)
        self.pid = pid
        self.command = list(command) if command is not None else None
        self._store = store
        self._owns_store = store is None  # a store it opened itself is closed when the run ends
        self._auto_distributed = False  # set by track(): a decorated function re-decides at each call
        self._spool_checked = False  # records spooled by earlier runs are stored after this run's first save
        # the unsaved-record spool belongs to the configured store: a tracker given its own store (a
        # distributed rank's part, a test's store) neither spools into it nor empties it there
        self.spool_unsaved = self._owns_store
        self._db_url = self.settings.db_url  # made absolute at start(): the first row and the store agree
        self._choice = sources
        self.monitor: EnergyMonitor | None = None
        # the record's fields from start(); the pydantic RunRecord is built from them on first use,
        # usually by the store thread, so that importing pydantic stays off the start path
        self._fields: dict[str, Any] | None = None
        self._record: RunRecord | None = None
        self._record_lock = threading.Lock()
        self._last_checkpoint = 0.0
        self._store_lock = threading.Lock()
        self._stopped = False
        self._flags: dict[str, str] = {}  # degraded parts flagged through flag()
        self._owner_pid = os.getpid()  # set again by start(); a forked child never stops or saves the run
        self._region = self._resolve_region()
        self._carbon = RunCarbon(self.settings, self._region)

    # -- set-up ----------------------------------------------------------------------------------
    def _resolve_region(self) -> dict[str, Any]:
        from wattprint.intensity.location import resolve_location

        region, region_source, facts = resolve_location(self.settings.region, self.settings.detect_cloud)
        self._cloud_instance = facts.instance_type if facts is not None else None  # for a VM's host figures
        found = StaticProvider().intensity(region, field="region")
        if region == WORLD_REGION and self.settings.region is None:
            region_source += " (set WATTPRINT_REGION or --region)"
        if self.settings.pue is not None:
            pue, pue_source = self.settings.pue, "configured"
        elif found.default_pue is not None:
            pue, pue_source = found.default_pue, f"default for {found.region.split(':')[0]} data centres"
        else:
            pue, pue_source = 1.0, "default 1.0 (local machine; set WATTPRINT_PUE for a data centre)"
        return {
            "region": found.region,
            "region_source": region_source,
            "intensity_g_per_kwh": found.g_per_kwh,
            "intensity_source": found.source,
            "pue": pue,
            "pue_source": pue_source,
        }

    def start(self) -> Tracker:
        """Start measuring. Raises only for bad configuration, before anything runs."""
        if self.monitor is not None:
            return self
        choice = self._choice
        if choice is None:
            choice = sources_for(self.settings, instance_type_hint=self._cloud_instance)
        self._choice = choice
        tree: Any
        try:
            tree = self.cgroup if self.cgroup is not None else ProcessTree(self.pid)
        except psutil.Error:
            tree = None
        self.monitor = EnergyMonitor(
            choice.sources,
            interval_s=self.settings.interval,
            tree=tree,
            attribution=self.settings.attribution,
            on_sample=self._on_sample,
            on_sample_every=callback_every(self.settings.checkpoint, self.settings.interval),
        )
        self.monitor.charge_unseen_gpus = self.cgroup is None
        if self.cgroup is not None:  # one of many runs: devices that cannot list processes go by CPU share
            self.monitor.share_gpus_by_cpu(
                {
                    d.name
                    for s in choice.sources
                    if not isinstance(s, ProcessListing)
                    for d in s.domains()
                    if d.component == "gpu"
                }
            )
        own = psutil.Process()
        self._fields = dict(
            run_id=self.run_id or os.urandom(16).hex(),
            name=self.name,
            started_at=datetime.now(timezone.utc),
            measurement=choice.measurement,
            methods=choice.methods,
            hardware=choice.hardware,
            host=self.settings.host or socket.gethostname(),
            pid=own.pid,
            pid_create_time=own.create_time(),
            command=self.command,
            interval_s=self.settings.interval,
            wattprint_version=__version__,
            region=self._region["region"],
            region_source=self._region["region_source"],
            intensity_g_per_kwh=self._region["intensity_g_per_kwh"],
            intensity_source=self._region["intensity_source"],
            pue=self._region["pue"],
            pue_source=self._region["pue_source"],
            attribution={"mode": self.settings.attribution, "tracked_pid": tree.root_pid if tree else None}
            | ({"cgroup": str(self.cgroup.path)} if self.cgroup is not None else {}),
        )
        from wattprint.store.first_row import absolute_sqlite_url

        self._db_url = absolute_sqlite_url(self.settings.db_url)  # a chdir later cannot split the run
        self._t0 = time.monotonic()
        self._owner_pid = os.getpid()
        self._last_checkpoint = self._t0
        self._cumulative: list[tuple[datetime, float]] = [(self._fields["started_at"], 0.0)]
        exit_hooks.watch(self)
        self._first_row()
        # shared cards and MIG slices count from the start, not the first checkpoint (a run on a 1g MIG slice would
        # be charged the whole card till then); it lists nothing where no source can list processes
        self._note_gpu_processes(self.monitor)
        self.monitor.start()
        # the store proper opens in the background: importing SQLAlchemy and connecting must not delay the job
        self._store_thread = threading.Thread(target=self._checkpoint, name="wattprint-store", daemon=True)
        self._store_thread.start()
        return self

    def wait_stored(self, timeout_s: float = 30.0) -> bool:
        """Wait until the first full record is stored (start() returns before, to not delay the job); True when
        it was. A benchmark waits, so that the store's work is not charged to its first measured window."""
        thread = getattr(self, "_store_thread", None)
        if thread is None:
            return False
        thread.join(timeout_s)
        return not thread.is_alive()

    def _first_row(self) -> None:
        """Put the run in the store, as running, before start() returns: a kill -9 at any time after it
        leaves an interrupted run. SQLite (the default): one INSERT with the standard library. A store
        given to the tracker: saved through it. Other URLs: the store is opened here. A failure is logged
        and left to the background checkpoints, which retry and flag it; it never stops the job."""
        from wattprint.store.first_row import FIRST_ROW_TIMEOUT_S, insert_running, sqlite_file

        assert self._fields is not None
        try:
            path = sqlite_file(self._db_url) if self._store is None else None
            if path is not None:
                # a second at most on the caller's thread: a store locked longer is the background's to wait on
                insert_running(path, self._fields, self.settings.checkpoint, FIRST_ROW_TIMEOUT_S)
            else:
                with self._store_lock:
                    self._save()
        except Exception as exc:  # the background store retries; it flags a fault that lasts
            where = self._db_url if sqlite_file(self._db_url) else "the configured store"  # a URL may hold a password
            log.warning(
                "wattprint: could not store run %s in %s at start (%s); retrying in the background",
                self._fields["run_id"],
                where,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )

    @property
    def record(self) -> RunRecord | None:
        """The run record (updated at each checkpoint and at stop); None before start()."""
        if self._record is None and self._fields is not None:
            with self._record_lock:
                if self._record is None:
                    from wattprint.record import RunRecord

                    self._record = RunRecord(**self._fields)
        return self._record

    # -- during the run --------------------------------------------------------------------------
    def set_functional_unit(self, unit: str, quantity: float) -> None:
        """The run's functional unit for its SCI score, e.g. ("sample", 60_000) or ("1000 inferences", 5_000)."""
        from wattprint.accounting.sci import functional_unit

        functional_unit(unit)  # validates the name now, not at the end of the run
        try:  # numpy and torch scalars count too; bool and text do not
            number = float(quantity) if isinstance(quantity, numbers.Real) or hasattr(quantity, "item") else None
        except (TypeError, ValueError, OverflowError, RuntimeError):  # RuntimeError: a tensor of many elements
            number = None
        if isinstance(quantity, bool) or number is None or not math.isfinite(number) or number <= 0:
            raise WattprintInputError("quantity", f"got {quantity!r}; expected a finite number > 0 of {unit!r}")
        self._carbon.functional_unit = (unit, number)

    def predict(self, total_epochs: int, prefix: str = "epoch", windows: Sequence[str] | None = None) -> Any:
        """Predict the whole run from its epochs so far: the closed windows named in `windows`, or else those
        whose name starts with `prefix` (`begin_window(f"epoch-{i}")` ... `end_window(...)`, as the training
        integrations name them). With none, the error lists the windows there are."""
        from wattprint.accounting.predict import predict_run

        if self.record is None:
            raise TrackerNotStartedError()
        if isinstance(windows, str):
            raise WattprintInputError("windows", f"got the text {windows!r}; expected a list of window names")
        chosen = set(windows) if windows is not None else None
        epochs = [
            (w["duration_s"], w["energy_kwh"]["total"])
            for w in self.record.windows
            if (str(w["name"]) in chosen if chosen is not None else str(w["name"]).startswith(prefix))
        ]
        if not epochs:
            seen = ", ".join(sorted({str(w["name"]) for w in self.record.windows})[:10]) or "none"
            wanted = f"named {sorted(chosen)}" if chosen is not None else f"whose name starts with {prefix!r}"
            raise WattprintInputError(
                "windows" if chosen is not None else "prefix",
                f"no closed window {wanted}; put each epoch in a window (`begin_window('epoch-1')` ... "
                f"`end_window('epoch-1')`), or name the windows to count; closed windows so far: {seen}",
            )
        return predict_run(epochs, total_epochs, self.record.intensity_g_per_kwh, self.record.pue)

    def log(self, **metrics: Any) -> None:
        """Attach metrics (accuracy, loss, samples, ...) to the run; later values replace earlier ones.

        Numbers of any kind (numpy and torch scalars, one-element arrays and tensors, Decimal, Fraction) are
        stored as numbers, containers element by element, anything else as its text: a value never makes
        the record unstorable."""
        from wattprint.tracking.metrics import metric_value

        if self.record is not None:
            self.record.metrics.update({key: metric_value(value) for key, value in metrics.items()})

    def begin_window(self, name: str, *, fresh: bool = True) -> None:
        """Open a named measurement window (windows may nest and overlap). `fresh=False`: from the last
        sample instead of a new one, for a caller that has just sampled (`monitor.sample()`)."""
        if self.monitor is None:
            raise TrackerNotStartedError()
        self.monitor.begin_window(name, fresh=fresh)

    def end_window(self, name: str, *, record: bool = True, fresh: bool = True) -> WindowResult:
        """Close a window and return its energy; also added to the record's `windows` unless `record=False`
        (for frequent windows, such as per-step figures, that would only grow the record)."""
        if self.monitor is None:
            raise TrackerNotStartedError()
        result = self.monitor.end_window(name, fresh=fresh)
        if record and self.record is not None:
            self.record.windows.append(
                {
                    "name": result.name,
                    "started_at": result.started_at.isoformat().replace("+00:00", "Z"),
                    "duration_s": result.duration_s,
                    "energy_kwh": {c: joules_to_kwh(result.energy_j[c]) for c in COMPONENTS}
                    | {"total": joules_to_kwh(result.total_j)},
                }
            )
        return result

    def energy_so_far_kwh(self) -> dict[str, float]:
        """Energy attributed to the run since start, per component and "total", as of the last sample."""
        if self.monitor is None:
            raise TrackerNotStartedError()
        attributed_j, _machine_j = self.monitor.by_component(self.monitor.totals())
        energy = {c: joules_to_kwh(attributed_j[c]) for c in COMPONENTS}
        return energy | {"total": sum(energy.values())}

    def window_co2e_kg(self, window: WindowResult) -> tuple[float, float]:
        """(operational, embodied) kg CO2e of a window of this run, counted as the record counts the run: its energy
        at the run's intensity and PUE, its length at the run's embodied rate (GPUs, and the host share held so far).
        A run's windows and the time outside them add up to the record's figures (at a constant intensity)."""
        if self.monitor is None or self.record is None:
            raise TrackerNotStartedError()
        gpus, _why = self.monitor.gpu_selection()
        energy: dict[str, float] = {c: joules_to_kwh(window.energy_j.get(c, 0.0)) for c in COMPONENTS}
        return self._carbon.span(self.record, self.monitor.mean_held_share(), energy, gpus, window.duration_s)

    def note_reaped_tree_cpu_s(self, total_cpu_s: float) -> None:
        """For `wattprint run`: the tracked child was reaped with this much CPU time (descendants included),
        so the last interval is charged its CPU time although the child has left /proc."""
        if self.monitor is not None and total_cpu_s > 0:
            self.monitor.note_root_reaped(total_cpu_s)

    def flag(self, key: str, reason: str) -> None:
        """Mark a part of the run as degraded (an integration's fault, say); kept on the record until the end."""
        self._flags[key] = reason
        if self.record is not None:
            self.record.degraded[key] = reason

    def _on_sample(self, monitor: EnergyMonitor) -> None:
        self._note_gpu_processes(monitor)
        now = time.monotonic()
        # half an interval of slack: a wait that returns a hair early must not put a checkpoint off a whole period
        if now - self._last_checkpoint >= self.settings.checkpoint - 0.5 * self.settings.interval:
            self._last_checkpoint = now
            self._checkpoint()

    def _note_gpu_processes(self, monitor: EnergyMonitor) -> None:
        for source in monitor.sources:
            if not isinstance(source, ProcessListing):
                continue
            try:
                listed = source.processes()
                used = {f"{source.name}:{i}" for i, pids in listed.items() if pids & monitor.tree_pids}
                utilization: dict[int, dict[int, int]] = getattr(source, "utilization", dict)()
                mig_of = getattr(source, "mig_devices", None)  # as processes() just read it: no second walk
                mig: dict[int, list[tuple[float, set[int]]]] = mig_of(fresh=False) if callable(mig_of) else {}
                shares = gpu_shares(listed, utilization, monitor.tree_pids, source.name, mig)
            except Exception as exc:  # only a hint: a driver fault must not stop the checkpoint
                log.debug("listing GPU processes failed: %s", exc)
                continue
            monitor.note_gpu_processes(used)
            if shares:
                monitor.set_gpu_shares(shares)
                if self.record is not None and any(share < 1.0 for share in shares.values()):
                    self.record.attribution["gpu_share_rule"] = GPU_SHARE_RULE

    def _update_record(self, status: Status, exit_code: int | None = None) -> RunRecord:
        from wattprint.accounting.footprint import facility_energy_kwh
        from wattprint.record import EnergyKwh  # here, not at import: pydantic stays off the start path

        rec, monitor = self.record, self.monitor
        assert monitor is not None and rec is not None
        attributed_j, machine_j = monitor.by_component(monitor.totals())  # totals() integrates queued samples
        energy: dict[str, float] = {c: joules_to_kwh(attributed_j[c]) for c in COMPONENTS}
        machine: dict[str, float] = {c: joules_to_kwh(machine_j[c]) for c in COMPONENTS}
        total = sum(energy.values())
        gpus, gpu_why = monitor.gpu_selection()
        rec.status = status
        rec.duration_s = time.monotonic() - self._t0
        self._cumulative.append((datetime.now(timezone.utc), total))
        rec.energy_kwh = EnergyKwh(total=total, **energy)
        rec.machine_energy_kwh = EnergyKwh(total=sum(machine.values()), **machine)
        rec.facility_energy_kwh = facility_energy_kwh(total, rec.pue)
        held = monitor.mean_held_share()
        self._carbon.account(rec, held, energy, gpus, self._cumulative, final=status != "running")
        rec.samples = monitor.samples
        rec.attribution.update(
            cpu_share=monitor.mean_cpu_share(),
            ram_share=monitor.ram_share,
            gpus=sorted(gpus),
            gpu_rule=gpu_why,
        )
        rec.degraded = self._degraded_components(monitor)
        if exit_code is not None:
            rec.exit_code = exit_code
        return rec

    def _degraded_components(self, monitor: EnergyMonitor) -> dict[str, str]:
        out = dict(self._flags)  # the tracker's own faults and those flagged by integrations
        for name, reason in monitor.degraded.items():
            domain = monitor.domains.get(name)
            key = domain.component if domain else name
            out.setdefault(key, f"{name}: {reason}")
        return out

    def _checkpoint(self) -> None:
        """Write the running record to the store. Errors are flagged, never raised."""
        if self.record is None or self._stopped:
            return
        try:
            with self._store_lock:
                if self._stopped:
                    return
                self._update_record("running")
                self._save()
        except Exception as exc:  # runs on the sampler thread: flagged, never raised
            self._flag_store(exc)

    def _save(self) -> None:
        assert self.record is not None  # only called with a started run
        if self._store is None:
            self._store = _open_writer(self._db_url, self.settings.host)
        self._store.save(self.record, checkpoint_s=self.settings.checkpoint)
        if self.spool_unsaved and not self._spool_checked:  # the store answers: earlier runs' records go there too
            self._spool_checked = True
            from wattprint.tracking.spool import store_spooled

            store_spooled(self._store, self.settings.home)
        if "store" in self._flags:  # it answers again: the record is whole, so the fault is no longer flagged
            log.warning("wattprint: run store available again; run %s saved", self.record.run_id)
            self._flags.pop("store")
            self.record.degraded.pop("store", None)
            self._store.save(self.record, checkpoint_s=self.settings.checkpoint)

    def _spool(self, rec: RunRecord) -> None:
        from wattprint.tracking.spool import spool

        path = spool(rec, self.settings.home)  # never raises
        if path is None:
            log.error(
                "wattprint: run %s is lost: neither the store nor %s could be written",
                rec.run_id,
                self.settings.home / "unsaved",
            )
            return
        rec.degraded["store"] = f"{rec.degraded.get('store', 'store unavailable')}; record kept in {path}"
        log.warning(
            "wattprint: run %s could not be stored; its record is kept in %s and goes to the store with "
            "the next tracked run that reaches it",
            rec.run_id,
            path,
        )

    def _flag_store(self, exc: BaseException) -> None:
        if "store" not in self._flags:
            # one line: a database error's text can carry the whole SQL statement and the record's JSON
            cause = getattr(exc, "orig", None) or exc
            text = " ".join(str(cause).split())[:300]
            log.error("wattprint: run store unavailable, record kept in memory: %s", text)
            self.flag("store", f"{type(cause).__name__}: {text}")

    # -- the end ---------------------------------------------------------------------------------
    def stop(
        self,
        status: Status = "finished",
        exit_code: int | None = None,
        *,
        annotate: Callable[[RunRecord], None] | None = None,
    ) -> RunRecord:
        """Stop measuring, write the final record to the store and return it.

        `annotate` is called with the final record (energy and carbon accounted) before it is saved, for
        fields derived from them, such as a benchmark's per-query figures; a fault in it is flagged."""
        if self._owner_pid != os.getpid():
            # a forked child leaving the tracked block: the run, its locks and its store belong to the parent
            return self._record  # type: ignore[return-value]
        if self.record is None or self.monitor is None:
            raise TrackerNotStartedError()
        with self._store_lock:  # test-and-set: an exit hook and a caller stopping at once stop it once
            if self._stopped:
                return self.record
            self._stopped = True
        exit_hooks.forget(self)
        try:
            self.monitor.stop()
            for name in self.monitor.open_windows():
                self.end_window(name)
        except Exception as exc:  # a monitor fault must not lose the final record
            self.flag("monitor", f"{type(exc).__name__}: {exc}")
        rec = self._update_record(status, exit_code)
        rec.ended_at = datetime.now(timezone.utc)
        points = timeline_points(self.monitor.timeline, self.monitor.interval_s)
        rec.timeline = {
            "t_s": [round(p[0], 3) for p in points],
            "cpu_w": [round(p[1], 3) for p in points],
            "gpu_w": [round(p[2], 3) for p in points],
            "ram_w": [round(p[3], 3) for p in points],
        }
        if annotate is not None:
            try:
                annotate(rec)
            except Exception as exc:  # the caller's derived fields must not cost the record
                log.error("wattprint: could not annotate run %s: %s", rec.run_id, exc)
                self.flag("annotate", f"{type(exc).__name__}: {exc}")
        try:
            with self._store_lock:
                self._save()
        except Exception as exc:  # the record is kept on disk for a later run to store; stop() still returns it
            self._flag_store(exc)
            if self.spool_unsaved:
                self._spool(rec)
        if self._owns_store and self._store is not None:
            # give the connections back now, not at garbage collection: many short runs against one
            # PostgreSQL server exhausted its connection slots
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
        self.monitor.close()
        return rec

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self._stopped:
            self.stop(*exit_status(exc_type, exc))

    def __call__(self, func: F) -> F:
        """Use a Tracker as a decorator: each call of `func` is tracked as one run."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # made by track(): distributed or not is decided at each call, when a process group may be up
            tracker = (
                _tracker_for(self.name, None, {"settings": self.settings})
                if self._auto_distributed
                else Tracker(self.name, settings=self.settings)
            )
            with tracker:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _open_writer(db_url: str, host: str | None) -> Any:
    """Where a tracker saves: the default SQLite file through the standard library (SQLAlchemy's import
    cost more than the rest of a short run; see store/sqlite_writer.py), any other URL through the store."""
    from wattprint.store.first_row import sqlite_file

    path = sqlite_file(db_url)
    if path is not None and not path.is_dir():  # a directory: the store's one-line refusal
        from wattprint.store.sqlite_writer import SqliteWriter

        return SqliteWriter(path)
    from wattprint.store import open_store

    return open_store(db_url, host=host)


GPU_SHARE_RULE = (
    "a GPU shared with other processes: the run's share of its energy is its processes' part of the SM "
    "utilisation NVML sampled since the last look (split by process count while the card is idle); whole "
    "where the run is alone on it or NVML keeps no samples; a card in MIG mode (no counter or samples per "
    "instance in NVML): each MIG device's share of the card's slices, split by process count within it; "
    "machine_energy_kwh keeps the whole card"
)


def gpu_shares(
    listed: Mapping[int, set[int]],
    utilization: Mapping[int, Mapping[int, int]],
    mine: frozenset[int],
    source: str = "nvml",
    mig: Mapping[int, Sequence[tuple[float, set[int]]]] | None = None,
) -> dict[str, float]:
    """The run's share of each GPU it shares with other processes, by domain name ("<source>:<index>"; see
    GPU_SHARE_RULE). A GPU in `mig` (each MIG device's part of the card and its PIDs) is shared by slices."""
    shares = {}
    for index, devices in (mig or {}).items():
        share = sum(part * len(pids & mine) / len(pids) for part, pids in devices if pids)
        if share > 0:
            shares[f"{source}:{index}"] = min(1.0, share)
    for index, pids in listed.items():
        if f"{source}:{index}" in shares:
            continue
        ours, others = pids & mine, pids - mine
        if not ours:
            continue  # not on it: the GPU selection charges it nothing
        if not others:
            shares[f"{source}:{index}"] = 1.0  # alone on it (again): the whole card
            continue
        util = utilization.get(index, {})
        total = sum(util.values())
        if total > 0:
            shares[f"{source}:{index}"] = sum(v for pid, v in util.items() if pid in mine) / total
        else:
            shares[f"{source}:{index}"] = len(ours) / len(pids)
    return shares


def preload() -> None:
    """Import now what a tracker imports lazily at its first checkpoint (the record model, the accounting, the
    store writer), for callers whose measurement starts right after start(): a benchmark's first window
    must not hold ~0.15 s of the tracker's own imports."""
    import importlib

    for module in (
        "wattprint.record",
        "wattprint.accounting.footprint",
        "wattprint.accounting.embodied",
        "wattprint.accounting.uncertainty",
        "wattprint.accounting.running",
        "wattprint.intensity",
        "wattprint.store.first_row",
        "wattprint.store.sqlite_writer",
        "wattprint.tracking.spool",
    ):
        importlib.import_module(module)


def callback_every(checkpoint_s: float, interval_s: float) -> int:
    """Sampler ticks between tracker callbacks: the largest divisor of the ticks per checkpoint up to
    GPU_PROCESS_CHECK_EVERY, so that a checkpoint falls due on a callback, never a tick later, while a
    sampler at 1 s with checkpoints every 5 s calls back once per checkpoint instead of every second."""
    per_checkpoint = max(1, math.ceil(checkpoint_s / interval_s - 1e-9))
    return max(d for d in range(1, GPU_PROCESS_CHECK_EVERY + 1) if per_checkpoint % d == 0)


def exit_status(exc_type: Any, exc: BaseException | None) -> tuple[Status, int | None]:
    """The status and exit code of a run whose `with` block ended with this exception (or none)."""
    if exc_type is None:
        return "finished", None
    if issubclass(exc_type, KeyboardInterrupt):
        return "interrupted", None
    if issubclass(exc_type, SystemExit):
        code = exc.code if isinstance(exc, SystemExit) else None
        ok = code in (None, 0)
        return ("finished" if ok else "failed"), (code if isinstance(code, int) else (0 if ok else 1))
    return "failed", None


def track(name: str = "run", *, distributed: bool | None = None, **kwargs: Any) -> Tracker | DistributedTracker:
    """Track a block (`with track("name") as t:`) or a function (`@track("name")`).

    In a torch.distributed job, where a process group of several ranks is up (when `track` is called; for
    a decorated function, at each call), every rank's `track` is a `DistributedTracker`: one record for
    the job, each node's CPU counted once, and the record says so (`distributed.tracked_by`).
    `distributed=False` keeps a plain tracker in every rank (one record per rank, each charged the
    machine's CPU); `True` asks for the distributed tracker (a plain run where no group is up at start).
    A rank that a launcher started but that has no group up yet is tracked alone, flagged on its record."""
    tracker = _tracker_for(name, distributed, kwargs)
    if isinstance(tracker, Tracker) and distributed is None:
        tracker._auto_distributed = True  # as a decorator: decide again at each call
    return tracker


def _tracker_for(name: str, distributed: bool | None, kwargs: dict[str, Any]) -> Tracker | DistributedTracker:
    """The tracker for this process now: distributed in a process group (unless opted out), else plain,
    flagged where a launcher started several ranks but no group is up to gather them."""
    plain_only = [k for k in _PLAIN_ONLY if k in kwargs]
    wanted = in_process_group() if distributed is None else distributed
    if wanted and not plain_only:
        # imported only here: it merges into the record model, which a plain run loads off its start path
        from wattprint.tracking.distributed import DistributedTracker

        tracked_by = "wattprint.track (process group found)" if distributed is None else "wattprint.track"
        return DistributedTracker(name, tracked_by=tracked_by, **kwargs)
    tracker = Tracker(name, **kwargs)
    launched = launched_rank()
    if distributed is None and launched is not None:
        rank, world = launched
        why = (
            f"given {', '.join(plain_only)}"
            if plain_only and wanted
            else "no torch.distributed process group was up when tracking started"
        )
        tracker.flag(
            "distributed",
            f"launched as rank {rank} of {world}, tracked alone ({why}): this record "
            "is this rank's only and counts the machine's CPU as its own; start tracking after "
            "init_process_group for one record per job, or pass distributed=False to keep this",
        )
    return tracker
