"""Data-parallel training under torchrun: 2 CPU processes (gloo) agree bit for bit and resume exactly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on Linux/macOS only")

TINY = [
    "--data", "fashion-mnist-mini", "--per-class", "8", "--classes", "trouser,sneaker",
    "--resolution", "16", "--batch-size", "8", "--threads", "1", "--no-progress",
    "--set", "model.latent_dim=16", "--set", "model.g_width=8", "--set", "model.e_width=8",
    "--set", "model.d_width=8", "--set", "train.checkpoint_every=3", "--set", "train.log_every=3",
    "--set", "train.sample_every=100",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], digest_dir: Path) -> dict[int, str]:
    """Run `vaemsgan train ARGS` on 2 processes; return {rank: 'step sha256'} of the final weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAEMSGAN_RANK_DIGEST_DIR": str(digest_dir)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "vaemsgan", "train", *args,
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("done in") == 1, p.stdout  # rank 0 alone prints
    return {r: (digest_dir / f"rank{r}.txt").read_text().strip() for r in (0, 1)}


def test_two_processes_agree_and_resume_exactly(tmp_path: Path) -> None:
    full = tmp_path / "full"
    a = _torchrun([*TINY, "--out", str(full), "--steps", "6"], tmp_path / "digest-full")
    assert a[0] == a[1] and a[0].startswith("6 ")  # identical weights (and EMA) on both ranks
    ckpts = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert ckpts == ["step-0000003.pt", "step-0000006.pt"]  # rank 0 alone wrote, no clashes
    records = (full / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2  # one writer: no duplicated log lines

    # Resume from the step-3 checkpoint of the same run in a new folder: the result equals the full run.
    split = tmp_path / "split"
    (split / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step-0000003.pt", split / "checkpoints")
    shutil.copy(full / "config.yaml", split / "config.yaml")
    b = _torchrun(
        ["--out", str(split), "--resume", "--steps", "6", "--no-progress"], tmp_path / "digest-split"
    )
    assert b[0] == b[1]
    assert b[0] == a[0]  # exact distributed resume: same data shards, per-rank RNG streams restored
