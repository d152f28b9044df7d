"""The VAE-MSGAN training loop. It reads like the algorithm:

    for each step:
        n_critic times:  x, y <- next batch;  fakes <- G(E(x)), G(z_p)
                         critic <- grad of  adversarial(real, fakes) + penalty
        encoder   <- grad of  kl_weight * KL(q(z|x) || p(z)) + reconstruction(Dis_l(x~), Dis_l(x))
        generator <- grad of  gamma * reconstruction + adversarial(x~, x_p)
        EMA(generator); every N steps: log, sample grid, checkpoint

Everything the run needs to continue exactly (weights, EMA, optimisers, RNG states, data position,
config) is in each checkpoint, so `resume` ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaemsgan.config import UNCAPPED_STEPS, Config
from vaemsgan.data import ImageSet
from vaemsgan.errors import VaemsganError
from vaemsgan.models import Networks, build_networks, reparameterize
from vaemsgan.training import distributed as ddp
from vaemsgan.training.augment import AdaptiveAugment, diff_augment
from vaemsgan.training.checkpointing import CheckpointMixin, TrainState
from vaemsgan.training.ema import EMA
from vaemsgan.training.loss import TrainingLoss, VaeGanLoss
from vaemsgan.training.outputs import OutputsMixin, TrainingMonitor
from vaemsgan.training.recovery import RecoveryMixin
from vaemsgan.utils.images import to_float
from vaemsgan.utils.io import atomic_write_text
from vaemsgan.utils.progress import progress_bar


def set_threads(threads: int) -> None:
    """Intra-op threads = physical cores unless set: hyper-threads only add contention in conv kernels."""
    if threads <= 0:
        threads = max(1, (os.cpu_count() or 2) // (2 if (os.cpu_count() or 2) > 2 else 1))
    torch.set_num_threads(threads)


class Trainer(RecoveryMixin, CheckpointMixin, OutputsMixin):
    def __init__(
        self,
        cfg: Config,
        data: ImageSet,
        run_dir: str | Path,
        device: str | torch.device = "cpu",
        progress: bool = True,
        log: Callable[[str], None] = print,
        monitor: TrainingMonitor | None = None,
    ) -> None:
        """`monitor`: checked every `train.monitor_every` steps (none: no monitoring)."""
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.monitor = monitor
        self.device = torch.device(device)
        self.progress, self.log = progress, log
        self.num_classes = len(data.class_names)
        t = cfg.train
        if len(data) < 1:
            raise VaemsganError("the training set is empty")
        self.batch_size = min(t.batch_size, len(data))
        if self.batch_size < t.batch_size:
            log(
                f"note: only {len(data)} training images; batch size lowered from {t.batch_size} to {self.batch_size}"
            )
        # Data parallel (torchrun): `batch_size` is the global batch, each rank takes its shard of it.
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.is_main = self.rank == 0
        if self.batch_size % self.world:
            raise VaemsganError(
                f"batch size {self.batch_size} does not split over {self.world} processes: use a multiple of "
                f"{self.world} (--batch-size is the global batch)"
            )
        self.local_batch = self.batch_size // self.world
        if not self.is_main:
            self.log = lambda msg: None  # every rank would say the same
        torch.manual_seed(t.seed)
        self.nets: Networks = build_networks(cfg, self.num_classes).to(self.device)
        # NHWC: oneDNN's convolutions run ~1.2x faster per step on a CPU (docs/BENCHMARKS.md); values are the
        # same up to float rounding, and checkpoints load into either layout.
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        for m in self.nets.modules().values():
            m.to(memory_format=self.memory_format)
        if self.world > 1:
            for m in self.nets.modules().values():
                ddp.broadcast_module(m)  # same seed gives the same init; this makes it certain
            if self.nets.encoder is not None:
                ddp.convert_sync_bn(self.nets.encoder)
            ddp.convert_sync_bn(self.nets.generator)
            # Noise (latents, reparameterisation, penalty interpolates) must differ between ranks.
            torch.manual_seed(t.seed + 1_000_003 * (self.rank + 1))
        self.conditional = self.nets.generator.conditional
        self.ema = EMA(self.nets.generator, t.ema_decay, t.ema_start) if t.ema_decay > 0 else None
        # Mixed precision (CUDA only): networks run under autocast, losses and the gradient penalty in fp32.
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        if self.amp_dtype is not None and self.device.type != "cuda":
            log(f"note: train.amp={t.amp} is for CUDA; training in fp32 on {self.device.type}")
            self.amp_dtype = None
        fp16 = self.amp_dtype == torch.float16  # fp16 gradients underflow without loss scaling
        self.scaler_d = torch.amp.GradScaler("cuda", init_scale=2.0**10) if fp16 else None
        self.scaler_g = torch.amp.GradScaler("cuda", init_scale=2.0**10) if fp16 else None
        betas = (t.beta1, t.beta2)
        self.opt_g = torch.optim.Adam(self.nets.generator.parameters(), lr=t.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.nets.critic.parameters(), lr=t.lr_d, betas=betas)
        self.opt_e = (
            torch.optim.Adam(self.nets.encoder.parameters(), lr=t.lr_e, betas=betas)
            if self.nets.encoder is not None
            else None
        )
        self.ada = AdaptiveAugment(target=t.ada_target) if t.augment and t.ada_target > 0 else None
        self.loss: TrainingLoss = VaeGanLoss(cfg, self)  # the objective; this class runs the algorithm
        self.images = data.images.to(self.device)  # uint8 on the device; converted per batch
        self.labels = data.labels.to(self.device)
        self.state = TrainState()
        # Fixed noise for the sample grid: 8 columns, one row per class (at most 16 rows shown).
        g = torch.Generator().manual_seed(t.seed + 12345)
        rows = min(self.num_classes, 16)
        self.grid_z = torch.randn(rows * 8, cfg.model.latent_dim, generator=g).to(self.device)
        self.grid_y = torch.arange(rows).repeat_interleave(8).to(self.device)
        self._stop_requested = False
        self._step_skipped = False  # set by _finite when an update of this training step was skipped
        self._good_state: dict[str, Any] | None = None  # CPU copy of the last finite state, for rollback

    # ------------------------------------------------------------------ data
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch k of a per-epoch seeded permutation: the position is the single counter `batches_drawn`."""
        n, b = len(self.images), self.batch_size
        per_epoch = n // b
        epoch, i = divmod(self.state.batches_drawn, per_epoch)
        if i == 0 or not hasattr(self, "_perm") or self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(n, generator=g).to(self.device), epoch
        idx = self._perm[i * b : (i + 1) * b]
        if self.world > 1:  # DistributedSampler-like: this rank's contiguous shard of the global batch
            idx = idx[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
        self.state.batches_drawn += 1
        return to_float(self.images[idx]).contiguous(memory_format=self.memory_format), self.labels[idx]

    # ------------------------------------------------------------------ pieces
    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment on every image the critic sees, real and fake, in both steps (never on samples)."""
        policy = self.cfg.train.augment
        if not policy:
            return x
        return diff_augment(x, policy, p=self.ada.p if self.ada is not None else 1.0)

    def _autocast(self, enabled: bool = True) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None or not enabled:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _scaled(self, loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
        return scaler.scale(loss) if scaler is not None else loss

    def critic_scores(
        self, x: torch.Tensor, y: torch.Tensor, features: bool = False, full_precision: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """(scores, full-scale block outputs if `features`, class logits if the critic has a class head)."""
        with self._autocast(enabled=not full_precision):
            score, _, feats, logits = self.nets.critic(
                x, y if self.conditional else None, return_features=features
            )
        if self.amp_dtype is not None:  # losses in fp32
            score, feats = score.float(), [f.float() for f in feats]
            logits = logits.float() if logits is not None else None
        return score, feats, logits

    def critic_features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        with self._autocast():
            return self.nets.critic.features(x, layer).float()

    def fakes(
        self, x: torch.Tensor, y: torch.Tensor, with_recon: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Reconstructions G(z ~ q(z|x)) and prior samples G(z_p), in ONE generator call.

        Returns (images [rec; prior] or [prior], their labels, mu, logvar). Only the first
        `loss.recon_fraction` of the batch is reconstructed (the VAE terms need few images; the critic
        and the generator's prior samples need the whole batch). Prior samples take the real batch's
        labels, so classes are drawn as in the data and every fake has a real partner of its class.
        """
        z_p = torch.randn(x.shape[0], self.cfg.model.latent_dim, device=self.device)
        if with_recon and self.nets.encoder is not None:
            n = max(1, round(self.cfg.loss.recon_fraction * x.shape[0]))
            labels = torch.cat([y[:n], y])
            with self._autocast():
                mu, logvar = self.nets.encoder(x[:n])
                mu, logvar = mu.float(), logvar.float()
                z = torch.cat([reparameterize(mu, logvar), z_p])
                imgs = self.nets.generator(z, labels if self.conditional else None)
            return imgs.float(), labels, mu, logvar
        with self._autocast():
            return self.nets.generator(z_p, y if self.conditional else None).float(), y, None, None

    # ------------------------------------------------------------------ steps
    def critic_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, out = self.loss.critic_loss(x, y, self.state.batches_drawn)
        self.opt_d.zero_grad(set_to_none=True)
        self._scaled(loss, self.scaler_d).backward()
        if self.scaler_d is not None:
            self.scaler_d.unscale_(self.opt_d)
        # Average before the NaN check: one rank's NaN reaches every rank, so all skip together.
        ddp.all_reduce_grads(list(self.nets.critic.parameters()))
        if self._finite([loss], self.opt_d):
            self.opt_d.step() if self.scaler_d is None else self.scaler_d.step(self.opt_d)
        if self.scaler_d is not None:
            self.scaler_d.update()
        return out

    def generator_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.nets.critic.requires_grad_(False)  # no critic gradients are needed here
        lg, out = self.loss.generator_loss(x, y)
        gen_loss, kl = lg.generator, lg.kl
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_e is not None:
            self.opt_e.zero_grad(set_to_none=True)
        if self.opt_e is not None and lg.encoder is not None:
            # Larsen's rule: the encoder follows KL + reconstruction only, not the GAN term,
            # so its gradient comes from its own loss (a second pass through the graph).
            enc_params = list(self.nets.encoder.parameters())
            sg = self.scaler_g
            enc_grads = torch.autograd.grad(self._scaled(lg.encoder, sg), enc_params, retain_graph=True)
            self._scaled(gen_loss, sg).backward()
            for p, g in zip(enc_params, enc_grads):
                p.grad = g
        else:
            self._scaled(lg.total, self.scaler_g).backward()
        if self.scaler_g is not None:
            self.scaler_g.unscale_(self.opt_g)
            if self.opt_e is not None:
                self.scaler_g.unscale_(self.opt_e)
        if self.world > 1:
            enc = list(self.nets.encoder.parameters()) if self.nets.encoder is not None else []
            ddp.all_reduce_grads(list(self.nets.generator.parameters()) + enc)
        if self._finite([gen_loss, kl], self.opt_g, self.opt_e):
            for opt in (self.opt_e, self.opt_g):
                if opt is not None:
                    opt.step() if self.scaler_g is None else self.scaler_g.step(opt)
        if self.scaler_g is not None:
            self.scaler_g.update()
        self.nets.critic.requires_grad_(True)
        if self.world > 1:  # BatchNorm running statistics: averaged, so every rank (and EMA) stays equal
            for m in self.nets.modules().values():
                ddp.all_reduce_buffers(m)
        return out

    # ------------------------------------------------------------------ loop
    def train(
        self,
        steps: int | None = None,
        *,
        deadline: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> TrainState:
        """Train to `steps` (default: the config's), or until `clock() >= deadline` (a time budget).

        `self.cpu_clock` is a clock that counts this run's training CPU time across resumes; a budget on it
        is fair on a shared machine and continues where an interrupted run stopped.
        """
        t = self.cfg.train
        self.deadline_reached = False
        total = steps if steps is not None else t.steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:  # rank 0 alone writes the run folder
            atomic_write_text(self.run_dir / "config.yaml", self.cfg.to_yaml())
        for m in self.nets.modules().values():
            m.train()
        sums: dict[str, torch.Tensor] = {}
        count, t_log = 0, time.perf_counter()
        self._snapshot(self.state_dict())
        old_handlers = self._install_signal_handlers()
        # With a time budget and no step cap, a step total and its ETA would be made up: the bar counts steps,
        # says when the budget ends and, at each log line, how much of it is left.
        bar_total = None if deadline is not None and total >= UNCAPPED_STEPS else total
        bar = progress_bar(
            total=bar_total,
            initial=self.state.step,
            disable=not self.progress or not self.is_main,
            unit="step",
            dynamic_ncols=True,
            desc="train"
            if deadline is None or not self.progress
            else f"train (time budget ends {time.strftime('%H:%M:%S', time.localtime(time.time() + deadline - clock()))})",
        )
        # Snapshot marks this run has not passed yet (a resumed run has passed some).
        pending = sorted(m for m in t.snapshot_minutes if 60.0 * m > self.state.cpu_seconds)
        try:
            while self.state.step < total and not self._stop_now(deadline, clock):
                self._step_skipped = False
                t_cpu = time.process_time()
                for _ in range(t.n_critic if self.cfg.loss.adversarial != "none" else 0):
                    x, y = self.next_batch()
                    for k, v in self.critic_step(x, y).items():
                        sums[k] = sums.get(k, 0) + v
                if self.cfg.loss.adversarial == "none":
                    x, y = self.next_batch()
                for k, v in self.generator_step(x, y).items():
                    sums[k] = sums.get(k, 0) + v
                self.state.step += 1
                count += 1
                self.state.cpu_seconds += time.process_time() - t_cpu
                if not self._step_skipped:
                    self.state.bad_steps = 0
                elif self._after_bad_step():  # rolled back: the step counter went back too
                    bar.reset(bar_total)
                    bar.update(self.state.step)
                    sums, count, t_log = {}, 0, time.perf_counter()
                    continue
                if self.ema is not None:
                    self.ema.update(self.nets.generator, self.state.step)
                if self.state.step in t.lr_milestones:
                    self._scale_learning_rates(t.lr_gamma)
                    self.log(f"step {self.state.step}: learning rates x{t.lr_gamma:g} (train.lr_milestones)")
                while pending and self.state.cpu_seconds >= 60.0 * pending[0]:
                    self.save_snapshot(pending.pop(0))
                bar.update(1)
                step = self.state.step
                if step % t.log_every == 0 or step == total:
                    elapsed = time.perf_counter() - t_log
                    record = {
                        "step": step,
                        **{k: float(ddp.all_reduce_mean(v)) / count for k, v in sums.items()},
                        "images_per_s": count * self.batch_size * max(t.n_critic, 1) / max(elapsed, 1e-9),
                    }
                    if self.ada is not None:
                        record["ada_p"] = self.ada.p
                    self._log_record(record)
                    postfix = {
                        k: f"{record[k]:.3g}" for k in ("d_loss", "g_loss", "images_per_s") if k in record
                    }
                    if deadline is not None:
                        postfix["budget_left"] = f"{max(deadline - clock(), 0.0) / 60:.1f}min"
                    bar.set_postfix(postfix)
                    sums, count, t_log = {}, 0, time.perf_counter()
                if step % t.sample_every == 0 or step == total:
                    self.save_samples()
                if step % t.checkpoint_every == 0 or step == total:
                    self.save()
                # The monitor runs every `monitor_every` steps and at the end of a run that long (rank 0 alone:
                # it only reads the weights and writes the run folder).
                if (
                    t.monitor_every
                    and self.monitor is not None
                    and self.is_main
                    and (step % t.monitor_every == 0 or (step == total and step >= t.monitor_every))
                ):
                    check = self.run_monitor()
                    if self._after_collapse_check(check.collapse):
                        bar.reset(bar_total)
                        bar.update(self.state.step)
                        sums, count, t_log = {}, 0, time.perf_counter()
            if self._stop_requested:
                self.save()
                self.save_samples()
                self.log(
                    f"time budget reached at step {self.state.step}: checkpoint and samples saved"
                    if self.deadline_reached
                    else f"stopped at step {self.state.step}: checkpoint saved; continue with the same command "
                    f"and --resume"
                )
        finally:
            bar.close()
            self._restore_signal_handlers(old_handlers)
        return self.state

    @property
    def stop_requested(self) -> bool:
        """Did the last `train` stop early (Ctrl-C, SIGTERM, a spent time budget or a collapse)?"""
        return self._stop_requested

    def cpu_clock(self) -> float:
        """Training CPU seconds of this run so far (resumes included): a clock for time budgets."""
        return self.state.cpu_seconds

    def _stop_now(
        self, deadline: float | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> bool:
        """Has a stop been requested? Across ranks, agreed at log intervals (one tiny all-reduce), so
        that every rank stops after the same step and saves together. A spent time budget (`deadline`
        on `clock`) is a stop request: the same clean stop at a step boundary, agreed the same way."""
        if deadline is not None and not self._stop_requested and clock() >= deadline:
            self._stop_requested = self.deadline_reached = True
        if self.world == 1:
            return self._stop_requested
        if self.state.step % self.cfg.train.log_every == 0:
            self._stop_requested = ddp.any_flag(self._stop_requested, self.device)
            return self._stop_requested
        return False

    def _log_record(self, record: dict[str, Any]) -> None:
        self.state.history.append(record)
        if not self.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        writer = self._tb_writer()
        if writer is not None:
            for k, v in record.items():
                if k != "step":
                    writer.add_scalar(k, v, record["step"])
            writer.flush()

    def _tb_writer(self) -> Any:
        if not hasattr(self, "_tb"):
            self._tb = None
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self._tb = None
        return self._tb

    def _install_signal_handlers(self) -> dict[int, Any]:
        """Ctrl-C / SIGTERM: finish the step, save, exit cleanly."""

        def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
            if self._stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._stop_requested = True
            self.log("\nstopping after this step (press Ctrl-C again to abort without saving) ...")

        old: dict[int, Any] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)
