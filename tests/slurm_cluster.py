"""A real single-node SLURM for the tests: munged, MariaDB + slurmdbd (sacct, which submitit reads job states from),
slurmctld and slurmd on localhost, all from Debian's packages, with every config, socket, log and state file in one folder.

`.ci/run` installs the packages; `Cluster.start()` raises `Unavailable` with the reason when something cannot be started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = "slurm-wlm slurmdbd munge mariadb-server"  # what .ci/run installs (Debian names)
DAEMONS = (
    "munged",
    "munge",
    "unmunge",
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "sacctmgr",
    "sinfo",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
)
CLUSTER = "imlnb"


class Unavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _path(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)


class Cluster:
    """Start with start(), stop with stop(); env holds SLURM_CONF for the SLURM commands (sbatch, sacct, squeue)."""

    def __init__(self, root: Path, cpus: int | None = None):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.node = "node1"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "etc" / "slurm.conf")}

    # -- set-up -------------------------------------------------------------------------------------------------------------
    def _write_configs(self) -> None:
        etc, r = self.root / "etc", self.root
        for d in ("etc", "munge", "db", "state", "spool", "log", "run"):
            (r / d).mkdir(parents=True, exist_ok=True)
        # SLURM's clients (sacctmgr at least, in 22.05) ignore AuthInfo=socket=... and use munge's default socket.
        self.munge_socket = Path("/run/munge/munge.socket.2")
        self.db_port, self.dbd_port, self.ctld_port, self.slurmd_port = (_free_port() for _ in range(4))
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        (etc / "slurmdbd.conf").write_text(
            f"{auth}DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.dbd_port}\nSlurmUser=root\nLogFile={r}/log/slurmdbd.log\n"
            f"PidFile={r}/run/slurmdbd.pid\nStorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={self.db_port}\nStorageUser=slurm\nStoragePass=slurm\nStorageLoc=slurm_acct_db\n"
        )
        (etc / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a config others can read (it holds the password)
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
        (etc / "slurm.conf").write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={self.ctld_port}\n"
            f"SlurmdPort={self.slurmd_port}\nSlurmUser=root\nSlurmdUser=root\n{auth}"
            f"StateSaveLocation={r}/state\nSlurmdSpoolDir={r}/spool\nSlurmctldPidFile={r}/run/slurmctld.pid\n"
            f"SlurmdPidFile={r}/run/slurmd.pid\nSlurmctldLogFile={r}/log/slurmctld.log\nSlurmdLogFile={r}/log/slurmd.log\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={self.dbd_port}\nJobCompType=jobcomp/none\nSchedulerType=sched/backfill\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\nMpiDefault=none\nMailProg=/bin/true\n"
            "SlurmdParameters=config_overrides\n"  # the node may declare more CPUs than it has (the tests run idle sleepers)
            "MinJobAge=600\nKillWait=5\nInactiveLimit=0\nSlurmdTimeout=300\nSlurmctldTimeout=300\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={self.cpus} RealMemory={mem_mb} State=UNKNOWN\n"
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )

    def _munge_works(self) -> bool:
        if not self.munge_socket.exists():
            return False
        cred = subprocess.run([_path("munge"), "-n", "-S", str(self.munge_socket)], capture_output=True, timeout=10)
        return (
            cred.returncode == 0
            and subprocess.run(
                [_path("unmunge"), "-S", str(self.munge_socket)], input=cred.stdout, capture_output=True, timeout=10
            ).returncode
            == 0
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def _wait_for(self, what: str, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise Unavailable(f"{dead[0]} exited while waiting for {what}: {self.log_tail(dead[0])}")
            if check():
                return
            time.sleep(0.5)
        raise Unavailable(f"timed out waiting for {what}: {self.log_tail()}")

    def _ok(self, argv: list[str]) -> bool:
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=30).returncode == 0

    def start(self) -> Cluster:
        missing = [d for d in DAEMONS if _path(d) is None]
        if missing:
            raise Unavailable(f"SLURM is not installed here (missing {missing}); `apt-get install {PACKAGES}` as .ci/run does")
        if os.geteuid() != 0:
            raise Unavailable("a test SLURM runs its daemons as root (slurmd starts jobs as their user); run as root, as CI does")
        self._write_configs()
        r = self.root
        if not self._munge_works():  # a munged already serving the default socket (a system one) is used as it is
            self.munge_socket.parent.mkdir(parents=True, exist_ok=True)
            self._spawn(
                "munged",
                [
                    _path("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={r}/munge/munge.key",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={r}/run/munged.pid",
                    f"--seed-file={r}/munge/seed",
                    f"--log-file={r}/log/munged.log",
                ],
            )
            self._wait_for("munged", self._munge_works)
        init = subprocess.run(
            [
                _path("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={r}/db",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
        )
        if init.returncode:
            raise Unavailable(f"mariadb-install-db failed: {init.stderr[-2000:]}")
        db_socket = r / "run" / "mysqld.sock"
        self._spawn(
            "mariadbd",
            [
                _path("mariadbd"),
                "--no-defaults",
                f"--datadir={r}/db",
                "--user=root",
                f"--socket={db_socket}",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={r}/run/mariadbd.pid",
                "--innodb-buffer-pool-size=32M",
                "--skip-name-resolve",
            ],
        )
        sql = (
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        self._wait_for("MariaDB", lambda: self._ok([_path("mariadb"), f"--socket={db_socket}", "-uroot", "-e", "SELECT 1"]))
        if not self._ok([_path("mariadb"), f"--socket={db_socket}", "-uroot", "-e", sql]):
            raise Unavailable("could not create the slurm database user")
        self._spawn("slurmdbd", [_path("slurmdbd"), "-D"])
        self._wait_for("slurmdbd", lambda: self._ok([_path("sacctmgr"), "-n", "list", "cluster"]))
        subprocess.run([_path("sacctmgr"), "-i", "add", "cluster", CLUSTER], env=self.env, capture_output=True)
        self.start_controller()
        self._spawn("slurmd", [_path("slurmd"), "-D", "-N", self.node])
        self._wait_for(
            "the node to be idle",
            lambda: (
                subprocess.run([_path("sinfo"), "-h", "-o", "%T"], env=self.env, capture_output=True, text=True).stdout.strip() == "idle"
            ),
        )
        return self

    def start_controller(self) -> None:
        """slurmctld, recovering its saved state (jobs queued and running) when it ran here before."""
        self._spawn("slurmctld", [_path("slurmctld"), "-D"])
        self._wait_for("slurmctld", lambda: self._ok([_path("sinfo"), "-h"]))

    def kill_controller(self) -> None:
        """SIGKILL slurmctld, as a crash would: running jobs go on under slurmd."""
        proc = self.procs.pop("slurmctld")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def log_tail(self, name: str | None = None, n: int = 1500) -> str:
        names = [name] if name else [p.stem for p in (self.root / "log").glob("*.log")]
        parts = []
        for n_ in names:
            for path in (self.root / "log" / f"{n_}.log", self.root / "log" / f"{n_}.out"):
                if path.exists():
                    parts.append(f"[{path.name}] {path.read_text(errors='replace')[-n:]}")
        return "\n".join(parts) or "(no logs)"

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            proc = self.procs.pop(name, None)
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
