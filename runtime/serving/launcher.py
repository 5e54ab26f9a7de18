"""Start, wait for and stop the server process in the server environment (``fornet serve`` and the tests).

The server environment is a separate venv (``make triton-env`` / ``setup/triton-env.sh``) because
the Triton wheel pins numpy<2 and its Python-backend stub must match the interpreter exactly. It is
found, in order, at: the ``env`` argument, ``$FORNET_TRITON_ENV``, ``./.venv-triton``, and
``.venv-triton`` in the fornet-deploy source tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import fornet
from fornet.runtime.serving.contract import MODEL_NAME, STOP_SIGNALS
from fornet.runtime.serving.errors import ServingError
from fornet.runtime.serving.options import ServerOptions
from fornet.runtime.serving.ports import require_free_ports

#: Environment variable naming the server environment.
ENV_VAR = "FORNET_TRITON_ENV"
#: Folder name of the server environment.
ENV_NAME = ".venv-triton"
#: The set-up step named in errors.
SETUP_HINT = "create it with `make triton-env` (or setup/triton-env.sh [DIR]) in the fornet-deploy source tree"
#: Marker the set-up script writes when the environment is complete.
READY_MARKER = ".installed"
#: Default bound on the server's start (tritonserver + model load).
START_TIMEOUT_S = 120.0
#: Default bound on a graceful stop before the process group is killed.
STOP_TIMEOUT_S = 30.0
#: ``prctl`` option: the signal the kernel sends a process when the thread that started it dies.
_PR_SET_PDEATHSIG = 1


def _stop_with(launcher: int, prctl: Callable[..., int]) -> None:
    """In the server process before it runs (``preexec_fn``): ask the kernel for SIGTERM when the launcher
    dies, even by SIGKILL; end at once, before running anything, if the launcher is already gone."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launcher:
        os._exit(1)


def _stop_with_this_process() -> Callable[[], None] | None:
    """The ``preexec_fn`` that ties a server process's life to this one (Linux; None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    return functools.partial(_stop_with, os.getpid(), ctypes.CDLL(None, use_errno=True).prctl)


def server_environment(env: str | os.PathLike[str] | None = None) -> Path:
    """The server environment's folder; :class:`ServingError` naming the set-up step when there is none."""
    if env is not None:
        candidates = [Path(env)]
    else:
        candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
        candidates += [Path.cwd() / ENV_NAME, Path(fornet.__file__).resolve().parents[1] / ENV_NAME]
    for candidate in candidates:
        if (candidate / READY_MARKER).is_file() and (candidate / "bin" / "python").exists():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ServingError(f"no Triton server environment found (looked in {looked}); {SETUP_HINT}, or point "
                       f"${ENV_VAR} at one")


def server_command(options: ServerOptions, env: Path) -> list[str]:
    """The command line of the server process."""
    return [str(env / "bin" / "python"), "-m", "fornet.runtime.serving.server", *options.argv()]


class ServerProcess:
    """One server process: :meth:`start`, :meth:`wait_ready`, :meth:`stop` (also as a context manager)."""

    def __init__(self, options: ServerOptions, env: str | os.PathLike[str] | None = None,
                 log: IO[str] | None = None) -> None:
        options.validate()
        self.options = options
        self.env = server_environment(env)
        self._log = log
        self._process: subprocess.Popen[str] | None = None

    @property
    def process(self) -> subprocess.Popen[str]:
        """The running process."""
        if self._process is None:
            raise ServingError("the server was not started")
        return self._process

    def check_model(self) -> None:
        """Raise :class:`ServingError` when the model is missing or its backend cannot run in the server
        environment (before anything starts)."""
        spec = self.options.model
        if not spec.path.is_file():
            raise ServingError(f"model file not found: {spec.path}; export one with `fornet export` or fix the path")
        backend = spec.backend_class()
        missing = [module for module, _ in backend.LIBRARIES if not self._env_has(module)]
        if missing:
            advice = ("export the checkpoint with `fornet export --model ... --input-size HxW` and serve the ONNX "
                      "file (the server environment is kept torch-free), or install "
                      if backend.NAME == "torch" else "install ")
            raise ServingError(f"{spec.path.name} opens with the {backend.NAME} backend, which needs "
                               f"{' and '.join(missing)} in the server environment {self.env}; it has none: "
                               f"{advice}{' '.join(missing)} into it ({self.env / 'bin' / 'pip'} install ...)")

    def _env_has(self, module: str) -> bool:
        """Whether the server environment's Python can import ``module`` (found, not imported)."""
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
        done = subprocess.run([str(self.env / "bin" / "python"), "-c", probe, module], capture_output=True,
                              timeout=60, check=False)
        return done.returncode == 0

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        """The server's command line and environment variables (None: this process's)."""
        return server_command(self.options, self.env), None

    def start(self) -> ServerProcess:
        """Check the model and the ports, then start the server (its own process group).

        The server never outlives this process: the kernel sends it SIGTERM (a graceful stop) when the
        thread that called :meth:`start` ends, even by SIGKILL (Linux parent-death signal).
        """
        self.check_model()
        require_free_ports(self.options.host, self.options.ports())
        command, environment = self.command()
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
                                         text=True, start_new_session=True, env=environment,
                                         preexec_fn=_stop_with_this_process())
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the model answers ready (``/v2/models/fornet/ready``: 200); :class:`ServingError` if the
        process ends or time runs out (the server itself is ready before PyTriton has loaded the model)."""
        deadline = time.monotonic() + timeout_s
        url = f"{self.options.http_url}/v2/models/{MODEL_NAME}/ready"
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                raise ServingError(f"the server process exited with status {status} before it was ready; "
                                   "its output above (or in its log) says why")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError), \
                    urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.5)
        self.stop()
        raise ServingError(f"the server was not ready within {timeout_s:.0f} s ({url}); stopped it")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (graceful), then kill the whole process group after ``timeout_s``; return the exit status."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # tritonserver children left behind by a crash
        return int(process.returncode)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RepositoryServer(ServerProcess):
    """The tritonserver bundled in the server environment, on a model repository (``fornet export --triton``).

    Serves the repository's Python-backend and other CPU-capable models here, to check a generated
    repository for real (the bundled server has the Python backend only, no ONNX Runtime or TensorRT
    backend). ``options.model`` is the repository folder; ``models`` the models to load.
    """

    def __init__(self, options: ServerOptions, models: tuple[str, ...] = (MODEL_NAME,),
                 env: str | os.PathLike[str] | None = None, log: IO[str] | None = None) -> None:
        super().__init__(options, env, log)
        self.models = models

    def check_model(self) -> None:
        if not (self.options.model.path / MODEL_NAME / "config.pbtxt").is_file():
            raise ServingError(f"{self.options.model.path} is not a model repository with a '{MODEL_NAME}' model; "
                               "write one with `fornet export --triton`")

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        found = sorted(self.env.glob("lib/python3*/site-packages/pytriton/tritonserver"))
        if not found:
            raise ServingError(f"{self.env} has no bundled tritonserver (nvidia-pytriton); {SETUP_HINT}")
        server, site = found[0], found[0].parents[1]
        o = self.options
        command = [str(server / "bin" / "tritonserver"), f"--model-repository={o.model.path.resolve()}",
                   f"--backend-directory={server / 'backends'}", "--model-control-mode=explicit",
                   *(f"--load-model={name}" for name in self.models), f"--http-address={o.host}",
                   f"--http-port={o.http_port}", f"--grpc-address={o.host}", f"--grpc-port={o.grpc_port}",
                   f"--metrics-address={o.host}", f"--metrics-port={o.metrics_port}"]
        # The Python-backend stub takes its interpreter (and so the venv's packages) from PATH.
        environment = {**os.environ, "PATH": f"{self.env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                       "LD_LIBRARY_PATH": str(site / "nvidia_pytriton.libs")}
        return command, environment


@contextlib.contextmanager
def _forward_signals(server: ServerProcess) -> Iterator[None]:
    """While serving in the foreground, SIGTERM, SIGINT and SIGHUP stop the server gracefully."""
    def forward(signum: int, frame: object) -> None:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_foreground(options: ServerOptions, env: str | os.PathLike[str] | None = None) -> int:
    """Run the server until it stops (SIGTERM/SIGINT/SIGHUP are passed on); return its exit status."""
    server = ServerProcess(options, env).start()
    with _forward_signals(server):
        status = server.process.wait()
    server.stop()
    return status
