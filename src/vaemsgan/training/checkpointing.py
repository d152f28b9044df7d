"""What a training run saves and loads: the counters of `TrainState`, and the Trainer's state dict (weights, EMA,
optimisers, augmentation, every RNG stream, data position, config), written as checkpoints and read back so that
a resumed run continues exactly. `CheckpointMixin` is a part of `Trainer` (training/trainer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaemsgan.checkpoint import checkpoint_dir, load_latest_valid, non_finite_tensors, save_checkpoint
from vaemsgan.errors import CheckpointError
from vaemsgan.training import distributed as ddp
from vaemsgan.utils.io import trim_jsonl


@dataclass
class TrainState:
    step: int = 0  # generator steps done
    batches_drawn: int = 0  # real batches consumed: fixes the data position for an exact resume
    bad_steps: int = 0  # consecutive steps with a skipped (non-finite) update
    rollbacks: int = 0  # rollbacks to the last good state after divergence
    cpu_seconds: float = 0.0  # process CPU time spent in training steps, across resumes (the CPU clock)
    collapse_rollbacks: int = 0  # rollbacks to best.pt after the monitor saw a collapse
    collapse_landed: int = -1  # step the last collapse rollback landed on (best.pt's step); -1: none yet
    collapse_kept: int = -1  # best.pt step a repeated rollback to was declined (said once); -1: none
    history: list[dict[str, float]] = field(default_factory=list)


class CheckpointMixin:
    """The Trainer's state dict, checkpoints and resume. It reads the Trainer's networks, optimisers and counters
    (set up by `Trainer.__init__`); `save` calls the recovery's `_recover` and `_snapshot` (training/recovery.py)."""

    state: TrainState

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self.world > 1:  # every rank's noise stream, so a distributed resume continues exactly
            here = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                here["cuda"] = torch.cuda.get_rng_state(self.device)
            rng["ranks"] = ddp.gather_objects(here)
        return {
            "config": self.cfg.to_dict(),
            "class_names": list(self.data.class_names),
            "data_channels": self.cfg.data.channels,
            "step": self.state.step,
            "batches_drawn": self.state.batches_drawn,
            "models": {k: m.state_dict() for k, m in self.nets.modules().items()},
            "ema": self.ema.model.state_dict() if self.ema is not None else None,
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "ada": self.ada.state_dict() if self.ada is not None else None,
            "rng": rng,
            "nan_rollbacks": self.state.rollbacks,
            "train_cpu_seconds": self.state.cpu_seconds,
            "collapse_rollbacks": self.state.collapse_rollbacks,
            "collapse_landed": self.state.collapse_landed,
            "collapse_kept": self.state.collapse_kept,
        }

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"generator": self.opt_g, "critic": self.opt_d}
        if self.opt_e is not None:
            opts["encoder"] = self.opt_e
        return opts

    def save(self) -> Path:
        """Checkpoint the current state; NaN/Inf weights are never written (rollback or stop instead)."""
        state = self.state_dict()
        bad = non_finite_tensors({"models": state["models"], "ema": state["ema"]})
        if bad:
            self._recover(f"NaN/Inf in the weights ({bad[0]})")
            state = self.state_dict()
        path = checkpoint_dir(self.run_dir) / f"step-{self.state.step:07d}.pt"  # what rank 0 writes
        if self.is_main:
            path = save_checkpoint(self.run_dir, state, self.state.step, self.cfg.train.keep)
        ddp.barrier()  # no rank runs ahead (or resumes) before the checkpoint is on disk
        self._snapshot(state)
        return path

    def load_state_dict(self, state: dict[str, Any], *, trim_log: bool = True) -> None:
        if state["class_names"] != list(self.data.class_names):
            raise CheckpointError(
                f"checkpoint classes {state['class_names']} differ from the data's {self.data.class_names}"
            )
        try:
            for k, m in self.nets.modules().items():
                m.load_state_dict(state["models"][k])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.model.load_state_dict(state["ema"])
            for k, o in self._optimizers().items():
                o.load_state_dict(state["optimizers"][k])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint does not fit this model config: {str(exc).splitlines()[0]}"
            ) from exc
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
        self.state.step = int(state["step"])
        self.state.batches_drawn = int(state["batches_drawn"])
        self.state.rollbacks = int(state.get("nan_rollbacks", 0))
        self.state.cpu_seconds = float(state.get("train_cpu_seconds", 0.0))
        self.state.collapse_rollbacks = int(state.get("collapse_rollbacks", 0))
        self.state.collapse_landed = int(state.get("collapse_landed", -1))
        self.state.collapse_kept = int(state.get("collapse_kept", -1))
        # A resumed run rewrites the records after its checkpoint: drop the old ones (rank 0 owns the log).
        if trim_log and self.is_main:
            trim_jsonl(self.run_dir / "metrics.jsonl", self.state.step)
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if self.world > 1:
            ranks = state["rng"].get("ranks")
            if ranks is not None and len(ranks) == self.world:
                torch.set_rng_state(ranks[self.rank]["torch"])
                if "cuda" in ranks[self.rank] and self.device.type == "cuda":
                    torch.cuda.set_rng_state(ranks[self.rank]["cuda"], self.device)
            else:  # saved by another number of processes: new noise streams, seeded by (seed, step, rank)
                torch.manual_seed(self.cfg.train.seed + 1_000_003 * (self.rank + 1) + self.state.step)
                self.log(
                    f"note: checkpoint from {len(ranks) if ranks else 1} process(es), resuming on {self.world}: "
                    "the data order continues exactly, the noise streams are re-seeded"
                )

    def resume(self) -> bool:
        """Continue from the newest valid checkpoint of the run folder. False when there is none."""
        state = load_latest_valid(self.run_dir, warn=self.log)
        if state is None:
            return False
        self.load_state_dict(state)
        self.log(f"resumed from {state['_path']} (step {self.state.step})")
        return True
