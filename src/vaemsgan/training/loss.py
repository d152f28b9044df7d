"""The training objective of VAE-MSGAN, apart from the loop that minimises it (as stylegan2-ada's
training/loss.py is apart from its training loop).

A loss object computes, for one real batch, the critic's loss and the generator's (and encoder's) losses
with a dict of detached values to log; the Trainer owns the networks, the optimisers, mixed precision,
the NaN guard, data parallelism and the schedule, and runs the networks for the loss through the small
`LossContext` protocol. A new objective is one file with a class like `VaeGanLoss`, registered in `LOSSES`.

The terms (functions in `vaemsgan.losses`):
- critic:    adversarial(real, fakes) + class_weight * CE(class head on reals) + drift * E[D(real)^2]
             + a penalty every `gp_every`-th critic batch (`gp_every_hires` above `model.width_resolution`),
             scaled by that interval (lazy regularisation):
             WGAN-GP toward the prior samples, or R1 on reals; the critic's scores on reals feed ADA;
- encoder:   kl_weight * KL(q(z|x) || N(0, I)) + reconstruction;
- generator: gamma * reconstruction + adversarial(x~ (with rec_as_fake) and x_p) + class_weight * CE,
where reconstruction = feature_recon_weight * ||Dis_l(x~) - Dis_l(x)||^2 + pixel_recon_weight * pixel loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from vaemsgan import losses
from vaemsgan.config import Config
from vaemsgan.models import Networks
from vaemsgan.training.augment import AdaptiveAugment

Logs = dict[str, torch.Tensor]


class LossContext(Protocol):
    """What a loss needs from the trainer: the networks, run as the trainer runs them (mixed precision)."""

    nets: Networks
    ada: AdaptiveAugment | None

    def augment(self, x: torch.Tensor) -> torch.Tensor: ...

    def fakes(
        self, x: torch.Tensor, y: torch.Tensor, with_recon: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]: ...

    def critic_scores(
        self, x: torch.Tensor, y: torch.Tensor, features: bool = False, full_precision: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]: ...

    def critic_features(self, x: torch.Tensor, layer: int) -> torch.Tensor: ...


@dataclass
class GeneratorLosses:
    """The generator step's losses."""

    generator: torch.Tensor  # gamma * reconstruction + adversarial (logged as g_loss)
    kl: torch.Tensor  # KL(q(z|x) || p(z)) (0 without an encoder)
    # The encoder's own loss (kl_weight * KL + reconstruction) when its gradient must come from it alone
    # (Larsen's rule: the encoder does not follow the GAN term); None when one backward of `total` is exact.
    encoder: torch.Tensor | None
    total: torch.Tensor  # what one backward pass minimises when `encoder` is None


class TrainingLoss(Protocol):
    def critic_loss(self, x: torch.Tensor, y: torch.Tensor, batch_index: int) -> tuple[torch.Tensor, Logs]:
        """The critic's loss on real batch number `batch_index` (counted over the run: lazy penalties)."""
        ...

    def generator_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[GeneratorLosses, Logs]: ...


def penalty_interval(cfg: Config) -> int:
    """Critic batches between two penalties: `loss.gp_every_hires` for images larger than
    `model.width_resolution` (when both are set), else `loss.gp_every`."""
    l, m = cfg.loss, cfg.model
    hires = m.width_resolution > 0 and cfg.data.resolution > m.width_resolution
    return l.gp_every_hires if hires and l.gp_every_hires > 0 else l.gp_every


class VaeGanLoss:
    """The VAE-MSGAN objective of `cfg.loss` (see the module docstring)."""

    def __init__(self, cfg: Config, run: LossContext) -> None:
        self.cfg, self.run = cfg, run
        self.gp_every = penalty_interval(cfg)

    def critic_loss(self, x: torch.Tensor, y: torch.Tensor, batch_index: int) -> tuple[torch.Tensor, Logs]:
        run, l = self.run, self.cfg.loss
        with torch.no_grad():
            fake, y_fake, _, _ = run.fakes(x, y, with_recon=l.rec_as_fake)
        x_aug, fake_aug = run.augment(x), run.augment(fake)
        if self.cfg.model.d_norm == "batch":  # BatchNorm: real and fake batches normalised apart, as in DCGAN
            real_s, _, real_logits = run.critic_scores(x_aug, y)
            fake_s, _, _ = run.critic_scores(fake_aug, y_fake)
        else:  # one forward over both is cheaper and exact for per-sample normalisations
            s, _, logits = run.critic_scores(torch.cat([x_aug, fake_aug]), torch.cat([y, y_fake]))
            real_s, fake_s = s[: x.shape[0]], s[x.shape[0] :]
            real_logits = logits[: x.shape[0]] if logits is not None else None
        loss = losses.critic_loss(l.adversarial, real_s, fake_s)
        out = {"d_loss": loss.detach(), "d_real": real_s.mean().detach(), "d_fake": fake_s.mean().detach()}
        if real_logits is not None:
            # The class head learns from real images only (fakes of a wrong class would teach it wrong labels).
            cls = F.cross_entropy(real_logits, y)
            loss = loss + l.class_weight * cls
            out["d_class"] = cls.detach()
        if l.drift > 0:
            loss = loss + l.drift * real_s.pow(2).mean()
        if run.ada is not None:
            # A WGAN critic's score has no fixed zero (it drifts as a whole; scores of -10 on reals are
            # common), so sign(D(real)) is taken relative to the batch's mean fake score there.
            offset = fake_s.detach().mean() if l.adversarial == "wgan-gp" else 0.0
            run.ada.update(real_s.detach() - offset)
        if batch_index % self.gp_every == 0:

            def critic_fn(imgs: torch.Tensor) -> torch.Tensor:
                # fp32 even under AMP: the double backward of the penalty is fragile in half precision.
                return run.critic_scores(run.augment(imgs), y, full_precision=True)[0]

            if l.adversarial == "wgan-gp" and l.gp_weight > 0:
                # Interpolate toward the prior samples (the last B fakes), which share the real labels.
                gp = losses.gradient_penalty(critic_fn, x, fake[-x.shape[0] :])
                loss = loss + l.gp_weight * self.gp_every * gp
                out["gp"] = gp.detach()
            elif l.r1_gamma > 0:
                r1 = losses.r1_penalty(critic_fn, x)
                loss = loss + 0.5 * l.r1_gamma * self.gp_every * r1
                out["r1"] = r1.detach()
        return loss, out

    def generator_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[GeneratorLosses, Logs]:
        run, l = self.run, self.cfg.loss
        adversarial = l.adversarial != "none"
        use_recon = run.nets.encoder is not None
        fake, y_fake, mu, logvar = run.fakes(x, y, with_recon=use_recon)
        b = x.shape[0]
        n = fake.shape[0] - b  # reconstructions come first
        out: Logs = {}
        adv = fake.new_zeros(())
        rec = fake.new_zeros(())
        kl = fake.new_zeros(())
        if use_recon:
            assert mu is not None and logvar is not None
            x_rec, x_orig = fake[:n], x[:n]
            kl = losses.kl_divergence(mu, logvar)
            out["kl"] = kl.detach()
        if adversarial:
            # With rec_as_fake the reconstructions are judged too; their features double as Dis_l(x~).
            judged, y_judged = (fake, y_fake) if (use_recon and l.rec_as_fake) else (fake[-b:], y)
            need_feats = use_recon and l.feature_recon_weight > 0
            reuse = need_feats and l.rec_as_fake and not self.cfg.train.augment
            scores, feats, logits = run.critic_scores(run.augment(judged), y_judged, features=reuse)
            adv = losses.generator_loss(l.adversarial, scores)
            out["g_adv"] = adv.detach()
            if logits is not None:  # fakes must be recognisable as their class
                cls = F.cross_entropy(logits, y_judged)
                adv = adv + l.class_weight * cls
                out["g_class"] = cls.detach()
            if need_feats:
                layer = self.cfg.model.feature_layer
                with torch.no_grad():
                    f_real = run.critic_features(x_orig, layer)
                f_rec = feats[layer][:n] if reuse else run.critic_features(x_rec, layer)
                fr = losses.feature_reconstruction(f_rec, f_real)
                rec = rec + l.feature_recon_weight * fr
                out["feat_rec"] = fr.detach()
        if use_recon and l.pixel_recon_weight > 0:
            px = losses.pixel_reconstruction(l.pixel_loss, x_rec, x_orig)
            rec = rec + l.pixel_recon_weight * px
            out["pix_rec"] = px.detach()
        gen_loss = l.gamma * rec + adv
        out["g_loss"] = gen_loss.detach()
        if not use_recon:
            return GeneratorLosses(gen_loss, kl, None, gen_loss), out
        if adversarial and l.rec_as_fake or l.gamma != 1.0:
            return GeneratorLosses(gen_loss, kl, l.kl_weight * kl + rec, gen_loss), out
        # gamma = 1 and no adversarial path through x~: one backward gives both gradients exactly.
        return GeneratorLosses(gen_loss, kl, None, gen_loss + l.kl_weight * kl), out


# Objectives by name: a new loss is a class here (or in its own file) and a name.
LOSSES: dict[str, Callable[[Config, LossContext], TrainingLoss]] = {"vae-gan": VaeGanLoss}
