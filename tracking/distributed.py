"""Multi-process supernet training with torch.distributed (``supernet train --nproc N``, torchrun).

Every rank trains the same path at global iteration ``g`` (the path depends on ``(seed, g)``
only) on its own shard of the global batch, so the gradient of the global loss is the sum of the
ranks' gradients. Three pieces make ``N`` processes give the weights of one process with the
same global batch (to float rounding):

* losses are normalised by global counts (:meth:`Dist.sum`), so the ranks' losses add up to the
  loss of the whole batch;
* batch norm uses the statistics of the whole batch (:class:`GlobalBatchNorm2d` on the CPU, torch's
  ``SyncBatchNorm`` kernels on CUDA), as a single process would;
* only the parameters on the path have gradients; every rank runs the same path, so the set is
  identical everywhere and :meth:`Dist.sum_grads` sums exactly those in one flat all-reduce (DDP
  would reduce every bucket of the whole supernet, most of it off the path, or pay
  ``find_unused_parameters``' graph walk each iteration).

gloo on the CPU, NCCL on CUDA. Rank 0 writes checkpoints and draws progress.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

# the differentiable all-reduce GlobalBatchNorm2d needs; its named successor is private API
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated",
                        category=FutureWarning)


@dataclass(frozen=True)
class Dist:
    """This process's place in a process group (``world == 1``: no group, every call is local)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, t: Tensor) -> Tensor:
        """Sum of ``t`` over ranks (not differentiable; counts and logged values)."""
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def sum_grads(self, params: list[nn.Parameter]) -> None:
        """Sum the gradients of ``params`` (those with one) over ranks, as one flat buffer."""
        if self.world == 1 or not params:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        off = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[off:off + n].view_as(g))
            off += n


def from_env(device: str = "auto") -> Dist:
    """The group torchrun (or :func:`spawn`) set up, joined on first call (NCCL when ``device``
    is a GPU, else gloo); ``Dist()`` when this process is alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        from tracking.devices import resolve_device

        dist.init_process_group("nccl" if resolve_device(device).type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def local_device(spec: str, d: Dist) -> str:
    """One GPU per process: ``cuda`` (or ``auto`` on a GPU machine) becomes ``cuda:LOCAL_RANK``."""
    from tracking.devices import resolve_device

    dev = resolve_device(spec)
    if d.world > 1 and dev.type == "cuda" and dev.index is None:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', d.rank)) % torch.cuda.device_count()}"
    return str(dev)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole batch over all ranks
    (torch's SyncBatchNorm runs on GPUs only). Same parameters and buffers as BatchNorm2d, so a
    state dict moves freely between the two; eval mode is plain BatchNorm2d."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        import torch.distributed.nn.functional as dnn

        c = x.shape[1]
        xd = x.double()  # one-pass moments: float64 keeps E[x^2] - E[x]^2 from cancelling
        local = torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)),
                           torch.full((1,), float(x.numel() // c), dtype=torch.float64, device=x.device)])
        tot = dnn.all_reduce(local)  # differentiable: the backward sums every rank's gradient
        n = tot[-1]
        mean = tot[:c] / n
        var = (tot[c:2 * c] / n - mean * mean).clamp(min=0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            unbiased = var * n / (n - 1).clamp(min=1)
            self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        inv = torch.rsqrt(var + self.eps).to(x.dtype)
        y = (x - mean.to(x.dtype)[None, :, None, None]) * inv[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def global_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm2d of ``module`` normalise over the whole distributed batch."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)  # state-dict compatible
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            # same fields, different forward: swapping the class keeps the module's identity
            # (optimizer, path lookups) and its state dict
            m.__class__ = GlobalBatchNorm2d
    return module


def plain_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`global_batchnorm` for the CPU case (what checkpoints and scorers expect)."""
    for m in module.modules():
        if type(m) is GlobalBatchNorm2d:
            m.__class__ = nn.BatchNorm2d
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(rank: int, world: int, port: int, device: str, fn: Callable[..., Any], args: tuple,
           kwargs: dict[str, Any], results: Any) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from tracking.devices import resolve_device

    backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        out = fn(*args, **kwargs)
        if rank == 0:
            results.put(out)
    finally:
        dist.destroy_process_group()


class RelayedProgress:
    """A progress callback (:mod:`tracking.progress`) that a spawned rank calls: it queues each
    report for the parent process, which passes it to the caller's callback."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, phase: str, done: int, total: int, note: str = "") -> None:
        self.queue.put((phase, done, total, note))


def _drain(reports: Any, progress: Any) -> None:
    while reports is not None and not reports.empty():
        phase, done, total, note = reports.get()
        progress(phase, done, total, note=note)


def spawn(nproc: int, fn: Callable[..., Any], *args: Any, device: str = "cpu", **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` fresh processes joined in one group on this
    machine (as ``torchrun --nproc_per_node nproc`` would) and return rank 0's result.
    ``fn`` must be importable (module level) and return small plain data (it passes through a
    pipe read after the ranks finish); an exception in any rank is raised here. A callable
    ``progress`` keyword is relayed: the ranks get a :class:`RelayedProgress`, and their reports
    reach ``progress`` in this process while they run."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    progress, reports = kwargs.get("progress"), None
    if callable(progress):  # a callback cannot cross into the ranks: relay their reports instead
        reports = ctx.SimpleQueue()
        kwargs = {**kwargs, "progress": RelayedProgress(reports)}
    procs = mp.spawn(_child, args=(nproc, free_port(), device, fn, args, kwargs, results), nprocs=nproc, join=False)
    while not procs.join(0.2):  # raises if a rank failed
        _drain(reports, progress)
    _drain(reports, progress)
    if results.empty():
        raise RuntimeError("rank 0 returned no result")
    return results.get()
