"""Multi-process runs under `torchrun` or `accelerate launch`: which process this is, and the
few collective steps relbench needs (a barrier, a broadcast, a mean, a replica check).

Both launchers set RANK, WORLD_SIZE and LOCAL_RANK, and MASTER_ADDR/MASTER_PORT for the
process group. Without them every function here is a no-op for the single process, and torch is
imported only when a process group is wanted, so evaluation of torch-free models needs no torch.
The process group uses gloo (CPU tensors; what relbench exchanges is small).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

TIMEOUT = timedelta(hours=2)
"""How long a collective waits for the slowest process. Longer than gloo's 30-minute default
because ranks legitimately wait on each other: during rank 0's periodic evaluation in training,
and at the end of a sharded eval whose ranks got uneven amounts of work left after a resume."""


@dataclass(frozen=True)
class ProcessInfo:
    """This process's place in a launch; (0, 1, 0) when started without a launcher."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes shared files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def process_info(env: Mapping[str, str] | None = None) -> ProcessInfo:
    """RANK / WORLD_SIZE / LOCAL_RANK from the environment (`os.environ` by default), checked."""
    env = os.environ if env is None else env

    def read(name: str, default: int) -> int:
        raw = env.get(name, "")
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"environment variable {name}={raw!r} is not an integer "
                "(it is set by torchrun / accelerate launch)"
            ) from None

    world = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} with WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return ProcessInfo(rank, world, read("LOCAL_RANK", rank))


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Items i with i % world_size == rank: a deterministic round-robin split, balanced to one
    item, so every rank gets a similar mix of suites and prompts."""
    return list(items[rank::world_size])


def is_active() -> bool:
    """Whether a torch.distributed process group is initialized in this process."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_initialized()


def can_init(env: Mapping[str, str] | None = None) -> bool:
    """Whether a multi-process launch can form a process group here: torch is installed and the
    launcher gave a rendezvous address (torchrun and accelerate launch do; a hand-set RANK may
    not)."""
    env = os.environ if env is None else env
    if not process_info(env).distributed or not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        return False
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available()


def init_process_group(backend: str = "gloo") -> bool:
    """Join the launcher's process group (env:// rendezvous) if this is a multi-process launch and
    none is initialized yet; returns whether a group is active afterwards. Idempotent; the group
    lives until the process ends. On CUDA machines each process is also pinned to LOCAL_RANK's GPU,
    so models that load onto "cuda" do not all land on GPU 0."""
    if is_active():
        return True
    info = process_info()
    if not info.distributed:
        return False
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() and info.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend, timeout=TIMEOUT)
    return True


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if is_active():
        import torch.distributed as dist

        dist.barrier()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer of `module` in place with rank `src`'s values."""
    if not is_active():
        return
    import torch.distributed as dist

    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src)


def broadcast_float(value: float, src: int = 0) -> float:
    """Rank `src`'s `value` on every process (exact: sent as float64)."""
    if not is_active():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(t, src)
    return float(t.item())


def mean_across(value: float) -> float:
    """The mean of `value` over all processes (e.g. a logged loss); `value` without a group."""
    if not is_active():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """SHA-256 over the names, dtypes, shapes and exact bytes of `tensors` (any order of keys)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def mismatched_ranks(digests: Sequence[bytes]) -> list[int]:
    """Ranks whose digest differs from rank 0's."""
    return [r for r, d in enumerate(digests) if d != digests[0]]


def assert_in_sync(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise if `tensors` are not bitwise identical on every process.

    DistributedDataParallel keeps replicas identical (all ranks apply the same averaged
    gradients), so a difference means a state that DDP does not synchronize has drifted, and a
    checkpoint written by rank 0 would not describe the other ranks' models."""
    if not is_active():
        return
    import torch
    import torch.distributed as dist

    mine = torch.tensor(list(tensors_digest(tensors)), dtype=torch.uint8)  # (32,)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    bad = mismatched_ranks([bytes(g.tolist()) for g in gathered])
    if bad:
        raise RuntimeError(
            f"{what} differ between processes: rank(s) {bad} do not match rank 0; "
            "the replicas have drifted apart, so a checkpoint would describe rank 0 only"
        )
