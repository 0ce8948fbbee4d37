"""Two CPU processes under DistributedDataParallel (gloo) against one process.

What is compared: DDP over 2 processes with b samples each against ONE process that splits the same 2b samples
into the same two micro-batches of b (``accumulate=2``) and sums their gradients before one update. Both use the
same equivariance warps (seeded per micro-batch index). A single forward pass over all 2b samples is *not* the
reference: BatchNorm in training mode normalises with the statistics of the samples it sees, so per-process
(or per-micro-batch) statistics differ from whole-batch ones; torch offers no SyncBatchNorm on CPU/gloo.

Compared after one step, in float32 (differences come from summation order in the all-reduce):
* the logged losses (mean over processes vs mean over micro-batches): relative 1e-5;
* every gradient: |Δg| ≤ 1e-5 + 1e-4 · max|g| of its tensor;
* every updated weight whose gradient is at least 1e-5 in magnitude: |Δw| ≤ 1e-5 (measured: ≤ 3e-7).
  Smaller gradients are rounding noise, e.g. a convolution bias right before BatchNorm (the normalisation
  subtracts it again, so its exact gradient is 0) or the keypoint logits' bias (the spatial softmax ignores a
  constant); Adam's first update lr·g/(|g| + 1e-8) turns noise of either sign into up to ±lr, so those weights
  are only checked to within 2·lr.
BatchNorm running statistics are not compared: under DDP they are rank 0's, with accumulation they are updated
once per micro-batch.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

from animate_cli.training.distributed import context_from_env, init_distributed, shutdown_distributed
from animate_cli.training.losses import L1PyramidLoss
from animate_cli.training.trainer import Trainer
from tests.training.tiny import load_tiny_config, square_clip

PER_PROCESS = 2
TOLERANCE = 1e-5
LR = 2e-4  # the tiny config's learning rates


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    clips = [torch.from_numpy(square_clip(6, seed=i)).permute(0, 3, 1, 2).float() / 255 for i in range(2 * PER_PROCESS)]
    return torch.stack([c[1] for c in clips]), torch.stack([c[5] for c in clips])


def parameters(trainer: Trainer, gradients: bool = False) -> dict[str, torch.Tensor]:
    """Every network's parameters (or, after a step, their gradients) by ``<network>.<key>``."""
    return {
        f"{name}.{key}": (value.grad if gradients else value).detach().clone()
        for name, network in trainer.model.networks().items()
        for key, value in network.named_parameters()
    }


OPTIONS = {"first-order": {}, "adversarial": {"generator_gan": 1}}


def ddp_worker(rank: int, port: int, out_file: str) -> None:
    """One step of each configuration in this process (one spawn for both keeps the test fast)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    context = context_from_env()
    init_distributed(context, torch.device("cpu"))
    try:
        results = {}
        for name, options in OPTIONS.items():
            trainer = Trainer(load_tiny_config(**options), reconstruction=L1PyramidLoss(10), context=context, seed=0)
            source, driving = batch()
            mine = slice(rank * PER_PROCESS, (rank + 1) * PER_PROCESS)
            losses = trainer.train_step(source[mine], driving[mine]).losses
            results[name] = {"losses": losses, "weights": parameters(trainer), "gradients": parameters(trainer, True)}
        if rank == 0:
            torch.save(results, out_file)
    finally:
        shutdown_distributed(finished=sys.exc_info()[0] is None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> dict:
    out_file = str(tmp_path_factory.mktemp("ddp") / "ddp.pt")
    mp.spawn(ddp_worker, args=(free_port(), out_file), nprocs=2, join=True)
    return torch.load(out_file, weights_only=True)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_two_processes_match_one_process_with_two_micro_batches(distributed_results, name):
    options, distributed = OPTIONS[name], distributed_results[name]
    initial = parameters(Trainer(load_tiny_config(**options), reconstruction=L1PyramidLoss(10), seed=0))
    single = Trainer(load_tiny_config(**options), reconstruction=L1PyramidLoss(10), accumulate=2, seed=0)
    losses = single.train_step(*batch()).losses
    weights, gradients = parameters(single), parameters(single, gradients=True)

    assert losses.keys() == distributed["losses"].keys()
    for loss, value in losses.items():
        assert distributed["losses"][loss] == pytest.approx(value, rel=TOLERANCE), loss
    assert weights.keys() == distributed["weights"].keys()
    noisy = 0
    for key, gradient in gradients.items():
        gradient_difference = (distributed["gradients"][key] - gradient).abs().max().item()
        assert gradient_difference <= TOLERANCE + 1e-4 * gradient.abs().max().item(), key
        difference = (distributed["weights"][key] - weights[key]).abs()
        significant = gradient.abs() >= TOLERANCE
        assert difference.where(significant, 0).max().item() <= TOLERANCE, key
        assert difference.where(~significant, 0).max().item() <= 2 * LR * 1.01, key
        noisy += int((~significant).sum())
    assert noisy < 0.01 * sum(g.numel() for g in gradients.values())
    # the step did something: weights moved by about lr
    assert max((weights[k] - initial[k]).abs().max().item() for k in weights) > 0.5 * LR
