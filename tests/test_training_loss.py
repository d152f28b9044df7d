"""The loss object (training/loss.py) computes exactly what the Trainer's steps computed inline before it:
a few training steps give bit-identical weights, EMA, optimiser and ADA states.

`InlineTrainer` keeps the pre-refactor `critic_step` / `generator_step` verbatim (the loss terms written
into the steps) as the reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaemsgan import losses
from vaemsgan.training import distributed as ddp
from vaemsgan.training.trainer import Trainer


class InlineTrainer(Trainer):
    """The Trainer with the loss terms inline in its steps, as it was before training/loss.py."""

    def critic_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        c, l = self.cfg, self.cfg.loss
        with torch.no_grad():
            fake, y_fake, _, _ = self.fakes(x, y, with_recon=l.rec_as_fake)
        x_aug, fake_aug = self.augment(x), self.augment(fake)
        if c.model.d_norm == "batch":  # BatchNorm: real and fake batches normalised apart, as in DCGAN
            real_s, _, real_logits = self.critic_scores(x_aug, y)
            fake_s, _, _ = self.critic_scores(fake_aug, y_fake)
        else:  # one forward over both is cheaper and exact for per-sample normalisations
            s, _, logits = self.critic_scores(torch.cat([x_aug, fake_aug]), torch.cat([y, y_fake]))
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
        if self.ada is not None:
            # A WGAN critic's score has no fixed zero (it drifts as a whole; scores of -10 on reals are
            # common), so sign(D(real)) is taken relative to the batch's mean fake score there.
            offset = fake_s.detach().mean() if l.adversarial == "wgan-gp" else 0.0
            self.ada.update(real_s.detach() - offset)
        n_crit = self.state.batches_drawn
        if n_crit % l.gp_every == 0:

            def critic_fn(imgs: torch.Tensor) -> torch.Tensor:
                # fp32 even under AMP: the double backward of the penalty is fragile in half precision.
                return self.critic_scores(self.augment(imgs), y, full_precision=True)[0]

            if l.adversarial == "wgan-gp" and l.gp_weight > 0:
                # Interpolate toward the prior samples (the last B fakes), which share the real labels.
                gp = losses.gradient_penalty(critic_fn, x, fake[-x.shape[0] :])
                loss = loss + l.gp_weight * l.gp_every * gp
                out["gp"] = gp.detach()
            elif l.r1_gamma > 0:
                r1 = losses.r1_penalty(critic_fn, x)
                loss = loss + 0.5 * l.r1_gamma * l.gp_every * r1
                out["r1"] = r1.detach()
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
        l = self.cfg.loss
        adversarial = l.adversarial != "none"
        use_recon = self.nets.encoder is not None
        self.nets.critic.requires_grad_(False)  # no critic gradients are needed here
        fake, y_fake, mu, logvar = self.fakes(x, y, with_recon=use_recon)
        b = x.shape[0]
        n = fake.shape[0] - b  # reconstructions come first
        out: dict[str, torch.Tensor] = {}
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
            scores, feats, logits = self.critic_scores(self.augment(judged), y_judged, features=reuse)
            adv = losses.generator_loss(l.adversarial, scores)
            out["g_adv"] = adv.detach()
            if logits is not None:  # fakes must be recognisable as their class
                cls = F.cross_entropy(logits, y_judged)
                adv = adv + l.class_weight * cls
                out["g_class"] = cls.detach()
            if need_feats:
                layer = self.cfg.model.feature_layer
                with torch.no_grad():
                    f_real = self.critic_features(x_orig, layer)
                f_rec = feats[layer][:n] if reuse else self.critic_features(x_rec, layer)
                fr = losses.feature_reconstruction(f_rec, f_real)
                rec = rec + l.feature_recon_weight * fr
                out["feat_rec"] = fr.detach()
        if use_recon and l.pixel_recon_weight > 0:
            px = losses.pixel_reconstruction(l.pixel_loss, x_rec, x_orig)
            rec = rec + l.pixel_recon_weight * px
            out["pix_rec"] = px.detach()
        gen_loss = l.gamma * rec + adv
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_e is not None:
            self.opt_e.zero_grad(set_to_none=True)
        if self.opt_e is not None:
            enc_loss = l.kl_weight * kl + rec
            enc_params = list(self.nets.encoder.parameters())
            if adversarial and l.rec_as_fake or l.gamma != 1.0:
                # Larsen's rule: the encoder follows KL + reconstruction only, not the GAN term,
                # so its gradient comes from its own loss (a second pass through the graph).
                sg = self.scaler_g
                enc_grads = torch.autograd.grad(self._scaled(enc_loss, sg), enc_params, retain_graph=True)
                self._scaled(gen_loss, sg).backward()
                for p, g in zip(enc_params, enc_grads):
                    p.grad = g
            else:
                # gamma = 1 and no adversarial path through x~: one backward gives both exactly.
                self._scaled(gen_loss + l.kl_weight * kl, self.scaler_g).backward()
        else:
            self._scaled(gen_loss, self.scaler_g).backward()
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
        out["g_loss"] = gen_loss.detach()
        return out


def _state(tr: Trainer) -> dict[str, object]:
    st = tr.state_dict()
    return {"models": st["models"], "ema": st["ema"], "optimizers": st["optimizers"], "ada": st["ada"]}


def _assert_identical(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            _assert_identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}/{i}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


CASES = {
    "default": ("default", {}),
    "paper": ("paper", {}),
    "vae": ("vae", {}),
    "dcgan": ("dcgan", {}),
    "vaegan": ("vaegan", {}),
    "cdcgan-wgan-gp": ("cdcgan-wgan-gp", {}),
    # hinge + lazy R1 + pixel reconstruction + gamma != 1 (the encoder's own gradient) + augmentation + ADA
    "hinge-r1-lazy-ada": (
        "default",
        {
            "loss": {
                "adversarial": "hinge",
                "r1_gamma": 1.0,
                "gp_every": 2,
                "pixel_recon_weight": 1.0,
                "gamma": 0.5,
            },
            "train": {"augment": "color,translation,cutout", "ada_target": 0.6, "n_critic": 2},
        },
    ),
    "ns-drift-rec-as-fake": ("default", {"loss": {"adversarial": "ns", "drift": 0.01, "rec_as_fake": True}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loss_object_gives_bit_identical_training(case: str, tmp_path, tiny_config, tiny_images) -> None:
    preset, overrides = CASES[case]
    runs = []
    for cls in (Trainer, InlineTrainer):
        tr = cls(tiny_config(preset, **overrides), tiny_images, tmp_path / cls.__name__, progress=False)
        tr.train(3)
        runs.append(tr)
    new, ref = runs
    _assert_identical(_state(new), _state(ref))

    def logged(tr: Trainer) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in tr.state.history]

    assert logged(new) == logged(ref)  # the same values, logged under the same names


def test_the_penalty_interval_above_width_resolution(tmp_path, tiny_config, tiny_images) -> None:
    """`loss.gp_every_hires` is the lazy-penalty interval for images larger than `model.width_resolution`
    (here 16 px images, width_resolution 8): R1 at every third critic batch instead of every one."""
    from vaemsgan.training.loss import penalty_interval

    lazy = {"r1_gamma": 1.0, "gp_every": 1, "gp_every_hires": 3}
    cfg = tiny_config("default", loss=lazy, model={"width_resolution": 8})
    assert penalty_interval(cfg) == 3
    assert penalty_interval(tiny_config("default", loss=lazy, model={"width_resolution": 16})) == 1
    assert penalty_interval(tiny_config("default", loss=lazy, model={"width_resolution": 0})) == 1
    no_hires = {**lazy, "gp_every_hires": 0}
    assert penalty_interval(tiny_config("default", loss=no_hires, model={"width_resolution": 8})) == 1
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lambda s: None)
    x, y = tr.next_batch()
    with_r1 = [i for i in range(7) if "r1" in tr.loss.critic_loss(x, y, i)[1]]
    assert with_r1 == [0, 3, 6]
