"""Data-parallel training across processes (torchrun): gloo on CPU, NCCL on CUDA.

Design (README, "Multi-GPU / multi-node"):
- The process group is set up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
  MASTER_PORT). Without those variables everything here is a no-op for a single process.
- Gradients are averaged by hand (`all_reduce_grads`, one flat all-reduce per optimiser step) instead of
  DistributedDataParallel wrappers: DDP's reducer does not support the gradient penalty's double
  backward (autograd.grad with create_graph) nor the encoder's second gradient pass. Averaging the
  gradients of per-rank mean losses over equal shards is the gradient of the global mean loss, so every
  rank applies the same update and the weights stay bit-identical.
- Buffers (BatchNorm running statistics) are averaged after each step (`all_reduce_buffers`), so the
  networks and the EMA generator are identical on every rank. Batch statistics inside a forward pass are
  per rank (as DDP without SyncBatchNorm); on CUDA the encoder's and the conditional generator's
  BatchNorm become SyncBatchNorm (`convert_sync_bn`). PyTorch's SyncBatchNorm runs on GPUs only and has
  no double backward, so the critic (differentiated twice by the penalty) keeps per-rank statistics.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_from_env(device: torch.device | str = "cpu", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun describes; returns this process's rank info (no-op for one process).

    CUDA: NCCL and device cuda:LOCAL_RANK. CPU: gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return info()
    world = env_world_size()
    if world <= 1 or not dist.is_available():
        return DistInfo()
    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return info()


def info() -> DistInfo:
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend()
    )


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device | str) -> torch.device:
    """cuda -> cuda:LOCAL_RANK under torchrun (one GPU per process); other devices unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and env_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank (start of training, after a resume)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def _flat_all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average same-dtype tensors over ranks in one collective (flatten, all-reduce, scatter back)."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def all_reduce_grads(params: list[torch.Tensor]) -> None:
    """Average `.grad` over ranks. Parameters without a gradient are skipped (the same on every rank,
    because every rank runs the same code path)."""
    if not is_distributed():
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        _flat_all_reduce_mean(grads)


def all_reduce_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running mean/var) over ranks; integer buffers (batch
    counters) are equal everywhere already."""
    if not is_distributed():
        return
    with torch.no_grad():
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for b in module.buffers():
            if b.is_floating_point():
                by_dtype.setdefault(b.dtype, []).append(b)
        for bufs in by_dtype.values():
            _flat_all_reduce_mean(bufs)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging); a copy, the input is unchanged."""
    if not is_distributed():
        return t
    out = t.detach().clone().float()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def all_finite(loss: torch.Tensor) -> torch.Tensor:
    """`loss` where it is finite on every rank, NaN otherwise: one rank's NaN makes every rank skip the
    step together (a rank skipping alone would leave the others waiting in the gradient all-reduce)."""
    if not is_distributed():
        return loss
    ok = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return torch.where(ok[0] > 0, loss, torch.full_like(loss, float("nan")))


def any_flag(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank when `flag` is True on any rank (e.g. a stop request seen by one process)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (collective: all ranks must call it)."""
    if not is_distributed():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """BatchNorm -> SyncBatchNorm on CUDA (no-op elsewhere: PyTorch's SyncBatchNorm is GPU-only).

    Only plain `nn.BatchNorm2d` children whose owner calls them as `bn(x)` are converted; subclasses with
    another forward signature (the generator's label-taking norms) keep per-rank statistics.
    """
    if not is_distributed() or not next(module.parameters()).is_cuda:
        return module
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            convert_sync_bn(child)
    return module


def state_digest(modules: dict[str, nn.Module]) -> str:
    """SHA-256 of the parameters and buffers of `modules` (name order): equal digests, equal weights."""
    h = hashlib.sha256()
    for name in sorted(modules):
        for key, t in sorted(modules[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
