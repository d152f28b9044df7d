"""Recovery from divergence and collapse: the Trainer's rollbacks. A step whose losses or gradients are not finite
is skipped; `train.nan_patience` of them in a row roll the run back to its last finite state with halved learning
rates (at most `train.nan_rollbacks` times, then it stops with a diagnosis). A collapse the monitor sees acts by
`train.collapse_action`: warn, stop, or roll back to best.pt. `RecoveryMixin` is a part of `Trainer`
(training/trainer.py)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from vaemsgan.checkpoint import discard_checkpoints_after, load_checkpoint, non_finite_tensors
from vaemsgan.errors import VaemsganError


class NonFiniteLossError(VaemsganError):
    """Training diverged (NaN/Inf) and could not recover."""


def cpu_copy(obj: Any) -> Any:
    """Deep copy of a nested state with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


class RecoveryMixin:
    """The Trainer's NaN/Inf guard and its rollbacks. It reads the Trainer's config, counters, monitor and run
    folder, and its checkpointing (`save`, `load_state_dict`, `_optimizers`: training/checkpointing.py)."""

    _good_state: dict[str, Any] | None
    _step_skipped: bool
    _stop_requested: bool

    def _finite(self, losses: list[torch.Tensor], *opts: torch.optim.Optimizer | None) -> bool:
        """NaN/Inf guard with one host sync: are the losses and every gradient of `opts` finite?

        If not, the caller skips the update (weights and optimiser state stay as they were) and the
        training step counts as bad; `_after_bad_step` decides between going on, rollback and stopping.
        """
        vals = [v.detach().float().reshape(()) for v in losses]
        grads = [p.grad for o in opts if o is not None for g in o.param_groups for p in g["params"]]
        grads = [g for g in grads if g is not None]
        if grads:
            # Max-abs per tensor: propagates NaN/Inf, and unlike a 2-norm cannot overflow on finite values.
            vals.extend(torch._foreach_norm(grads, float("inf")))
        if bool(torch.isfinite(torch.stack([v.float() for v in vals])).all()):
            return True
        self._step_skipped = True
        return False

    def _after_bad_step(self) -> bool:
        """Count a step whose update was skipped; True when it led to a rollback."""
        self.state.bad_steps += 1
        self.log(
            f"warning: NaN/Inf loss or gradient at step {self.state.step}; update skipped "
            f"({self.state.bad_steps} in a row, rollback after {self.cfg.train.nan_patience})"
        )
        if self.state.bad_steps < self.cfg.train.nan_patience:
            return False
        self._recover(f"{self.state.bad_steps} consecutive steps with NaN/Inf losses or gradients")
        return True

    def _recover(self, reason: str) -> None:
        """Roll back to the last good state with halved learning rates, or stop with a diagnosis."""
        t = self.cfg.train
        good, failed_at = self._good_state, self.state.step
        if good is None or self.state.rollbacks >= t.nan_rollbacks:
            why = (
                "the weights were not finite to begin with"
                if good is None
                else f"still after {self.state.rollbacks} rollback(s) with halved learning rates"
            )
            raise NonFiniteLossError(
                f"training diverged at step {failed_at}: {reason}; {why}. Lower the learning rates "
                "(--lr-g/--lr-d/--lr-e), raise the gradient penalty (--gp-weight) or check the data; "
                "no NaN checkpoint was written, the checkpoints on disk are from before the divergence"
            )
        rollbacks = self.state.rollbacks + 1
        # A deep copy: optimizers alias loaded tensors, and the snapshot must stay as it was.
        factor = self._roll_back_to(copy.deepcopy(good), "nan_rollbacks", rollbacks)
        self.state.rollbacks, self.state.bad_steps = rollbacks, 0
        self.log(
            f"warning: {reason} at step {failed_at}: rolled back to step {self.state.step} with the "
            f"learning rates x{factor:g} (rollback {rollbacks} of at most {t.nan_rollbacks})"
        )

    def _after_collapse_check(self, reason: str | None) -> bool:
        """Act on the monitor's collapse verdict (train.collapse_action); True when it rolled back.

        `rollback` rolls back to best.pt (at most train.nan_rollbacks times, then it stops), but not twice to
        the same state: when best.pt is still the state the last collapse rollback landed on and the run,
        trained on from there, collapsed again, another rollback would only repeat that (a rollback to the
        first minutes' noise, again and again, throws the run away). Then training goes on without a rollback
        (said once; best.pt keeps the best state, and a new best.pt can be rolled back to again)."""
        t = self.cfg.train
        if reason is None or t.collapse_action == "warn" or self.world > 1:
            if reason is not None:
                self.log(f"warning: {reason}; best.pt keeps the best state")
            return False
        best = self.run_dir / "best.pt"
        if (
            t.collapse_action == "stop"
            or self.state.collapse_rollbacks >= t.nan_rollbacks
            or not best.is_file()
        ):
            self._stop_requested = True
            kept = (
                "best.pt (used by generate and evaluate) keeps the best state"
                if best.is_file()
                else "there is no best.pt to roll back to (generate and evaluate take the newest checkpoint)"
            )
            self.log(
                f"stopping at step {self.state.step}: {reason}. {kept}; to go on, resume with lower learning "
                "rates or --set loss.r1_gamma=1"
            )
            return False
        target = load_checkpoint(best)
        if self._declines_repeated_rollback(int(target["step"]), reason):
            return False
        failed_at, kept = self.state.step, self.state.collapse_kept
        rollbacks = self.state.collapse_rollbacks + 1
        factor = self._roll_back_to(target, "collapse_rollbacks", rollbacks)
        # The rollback loaded best.pt's own counters (saved before this rollback): set them anew.
        self.state.collapse_rollbacks, self.state.collapse_kept = rollbacks, kept
        self.state.collapse_landed = self.state.step
        if self.monitor is not None:
            self.monitor.rolled_back()  # judge the continued run afresh
        self.log(
            f"warning: step {failed_at}: {reason}. Rolled back to best.pt (step {self.state.step}) with the "
            f"learning rates x{factor:g} (collapse rollback {rollbacks} of at most {t.nan_rollbacks})"
        )
        self.save()  # a resume continues the rolled-back run (its rates, its rollback counters)
        return True

    def _declines_repeated_rollback(self, best_step: int, reason: str) -> bool:
        """True (and said once per best.pt) when a rollback to best.pt at `best_step` would land where the last
        collapse rollback landed, and the run trained on from there and collapsed again."""
        if best_step != self.state.collapse_landed or self.state.step <= best_step:
            return False
        if self.state.collapse_kept != best_step:
            self.state.collapse_kept = best_step
            self.log(
                f"warning: step {self.state.step}: {reason}, again after the rollback to best.pt (step "
                f"{best_step}): rolling back there once more would not recover, so training goes on without a "
                f"rollback; best.pt keeps the best state (step {best_step}, used by generate and evaluate); if "
                "the samples stay bad, train anew with lower train.lr_g / lr_d or --set loss.r1_gamma=1"
            )
        return True

    def _roll_back_to(self, state: dict[str, Any], counter: str, rollbacks: int) -> float:
        """Continue from `state` (a NaN rollback's last good state, a collapse rollback's best.pt): the CPU
        time already spent stays spent, the checkpoints past it go, and the learning rates are x0.5 per
        rollback made since `state` was saved (its `counter`), so a second rollback to the same state quarters
        them instead of replaying the first retry (same state, same seed). Returns that factor."""
        spent = self.state.cpu_seconds
        self.load_state_dict(state, trim_log=False)
        self.state.cpu_seconds = spent
        factor = 0.5 ** (rollbacks - int(state.get(counter, 0)))
        self._scale_learning_rates(factor)
        self._discard_abandoned()
        return factor

    def _scale_learning_rates(self, factor: float) -> None:
        """Multiply every optimizer's rate by `factor`: the rollbacks' halving and the step schedule. The rates
        live in the optimizers' state (and checkpoints), so the factors compose, and a rollback to before a
        milestone passes that milestone again."""
        for o in self._optimizers().values():
            for g in o.param_groups:
                g["lr"] *= factor

    def _discard_abandoned(self) -> None:
        """After a rollback: checkpoints past the restored step belong to the abandoned trajectory; without
        this a resume would take the highest step, i.e. the diverged or collapsed state."""
        if self.is_main:
            discard_checkpoints_after(self.run_dir, self.state.step)

    def _snapshot(self, state: dict[str, Any]) -> None:
        """Keep a CPU copy of a finite state as the rollback target (a non-finite one is never kept)."""
        if non_finite_tensors({"models": state["models"], "ema": state["ema"]}):
            return
        self._good_state = cpu_copy(state)
