"""Where a training process runs: device, mixed precision, CPU threads and ``torchrun`` / DDP.

There is no launcher of our own: ``torchrun --nproc-per-node N -m fornet.model.train ...`` sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR/PORT``);
:func:`setup_environment` reads them and joins the process group (gloo on CPU, nccl on CUDA).
Without them the run is a single process.
"""
# ruff: noqa: TID253

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fornet.model.errors import ModelError
from fornet.options import cuda_index, parse_device


class TrainEnvironmentError(ModelError):
    """The requested device, precision or distributed setup is not available."""


@dataclass(frozen=True)
class TrainEnvironment:
    """One training process's place in the job.

    Attributes:
        rank, world_size, local_rank, local_world_size: from ``torchrun``'s variables
            (0, 1, 0, 1 without them).
        device: the torch device this process trains on.
        amp_dtype: autocast dtype, or None for float32 training.
        distributed: True when this process joined a process group of ``world_size`` > 1.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    amp_dtype: torch.dtype | None
    distributed: bool

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files, validates and logs."""
        return self.rank == 0

    @property
    def uses_grad_scaler(self) -> bool:
        """float16 autocast needs loss scaling; bfloat16 does not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The forward pass's autocast context (a no-op without mixed precision)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def barrier(self) -> None:
        """Wait for every process (no-op for a single process)."""
        if self.distributed:
            dist.barrier(device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    def mean_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of ``values`` over all processes (returned on the CPU)."""
        if not self.distributed:
            return values.cpu()
        values = values.to(self.device, copy=True)  # nccl reduces GPU tensors only
        dist.all_reduce(values)
        return (values / self.world_size).cpu()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise TrainEnvironmentError(f"environment variable {name}={raw!r} is not an integer; "
                                    "launch multi-process training with torchrun") from None


def _choose_device(requested: str | None, local_rank: int, distributed: bool) -> torch.device:
    cuda_ok = torch.cuda.is_available()
    device = parse_device(requested or "auto")
    if device == "auto":
        device = "cuda:0" if cuda_ok else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not cuda_ok:
        raise TrainEnvironmentError(
            f"--device {device} was requested but torch {torch.__version__} sees no CUDA GPU; "
            "use --device cpu, or install a CUDA build of torch and check nvidia-smi"
        )
    if not distributed:
        local_rank = cuda_index(device)
    if local_rank >= torch.cuda.device_count():
        raise TrainEnvironmentError(
            f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "start torchrun with --nproc-per-node no larger than the number of GPUs"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _choose_amp(device: torch.device, amp: bool | None, amp_dtype: str | None) -> torch.dtype | None:
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type != "cuda":
        raise TrainEnvironmentError("--amp needs a CUDA device (mixed precision is for GPUs only); "
                                    "drop --amp or pass --device cuda")
    if amp_dtype is None:
        amp_dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp_dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise TrainEnvironmentError("this GPU does not support bfloat16; use --amp-dtype fp16")
    return torch.bfloat16 if amp_dtype == "bf16" else torch.float16


def _set_cpu_threads(local_world_size: int) -> None:
    """Share the CPU cores between the processes of one machine (unless OMP_NUM_THREADS is set)."""
    if local_world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world_size))


@contextlib.contextmanager
def setup_environment(device: str | None = None, amp: bool | None = None,
                      amp_dtype: str | None = None) -> Iterator[TrainEnvironment]:
    """Pick the device and precision and join the ``torchrun`` process group for the block.

    The process group is destroyed when the block ends (if this call created it).

    Raises:
        TrainEnvironmentError: CUDA requested but absent, AMP on CPU, bad torchrun variables.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world_size = _env_int("LOCAL_WORLD_SIZE", 1)
    torch_device = _choose_device(device, local_rank, world_size > 1)
    amp_torch_dtype = _choose_amp(torch_device, amp, amp_dtype)
    if torch_device.type == "cpu":
        _set_cpu_threads(local_world_size)
    else:
        torch.backends.cudnn.benchmark = True
    created = False
    if world_size > 1 and not dist.is_initialized():
        # Long timeout: the other ranks wait in a barrier while rank 0 validates.
        dist.init_process_group(backend="nccl" if torch_device.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size, timeout=datetime.timedelta(hours=2))
        created = True
    try:
        yield TrainEnvironment(rank, world_size, local_rank, local_world_size, torch_device, amp_torch_dtype,
                               distributed=world_size > 1)
    finally:
        if created:
            dist.destroy_process_group()
