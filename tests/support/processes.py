"""Run the services as real processes, the way an operator does."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    # Ready when this answers 200: the gateway's /healthz, the others' on their ops port.
    health_url: str
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # Where this start's output begins in the log (a restarted service appends to it).
    log_offset: int = field(default=0, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready; its log:\n{self.log()[-3000:]}")

    def healthy(self) -> bool:
        try:
            return httpx.get(self.health_url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def ops_url(self) -> str:
        """Where its /metrics and /healthz are (the gateway: its own port)."""
        return self.health_url.removesuffix("/healthz")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as an orchestrator sends it; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise RuntimeError(f"{self.name} ignored SIGTERM for {timeout} s") from None

    def kill(self) -> int:
        """SIGKILL to the whole process group, as a crash or the OOM killer: no clean-up at all."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)


def service(name: str, script: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """A service process; the ones without an HTTP port of their own get an ops port."""
    if script == "albs-gateway":
        health_url = f"http://127.0.0.1:{env.get('ALBS_PORT', '8088')}/healthz"
    else:
        env = {"ALBS_OPS_PORT": str(free_port()), **env}
        health_url = f"http://127.0.0.1:{env['ALBS_OPS_PORT']}/healthz"
    return ServiceProcess(
        name=name,
        command=[str(BIN / script)],
        env=env,
        log_path=log_dir / f"{name}.log",
        health_url=health_url,
    )
