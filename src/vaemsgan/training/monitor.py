"""Training monitor: every `train.monitor_every` steps, judge the EMA generator on a fixed subset.

On fixed real images and fixed latents (so values are comparable across steps) it measures, in the
`domain` feature space (a small classifier trained once on the training images, cached on disk):
- `monitor/kid`: KID between generated and real features (lower is better);
- `monitor/coverage`: share of real images with a generated one in their k-NN ball (Naeem et al.);
- `monitor/diversity`: per class, mean pairwise feature distance of generated / of real images,
  averaged over classes (1 = as varied as the data; a collapsing class falls toward 0);
- `monitor/near_copy`: share of generated images closer in pixels to a training image than 99% of the
  training images are to their nearest *other* training image (leave-one-out: there is no test set here).
Values go to metrics.jsonl and RUN/monitor.png; RUN/best.pt is kept when `train.best_metric` improves,
and collapse or memorisation is reported in words.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.extractors import domain_extractor
from vaemsgan.evaluation.memorisation import mean_pairwise_distance, near_copy_threshold, pixel_nn
from vaemsgan.metrics import density_coverage, kid
from vaemsgan.models.layers import prior_batches, recalibrate_batchnorm
from vaemsgan.training.checkpoint import save_best
from vaemsgan.utils.images import to_uint8

if TYPE_CHECKING:
    from vaemsgan.training.trainer import Trainer

# Small on purpose: the monitor runs inside training; ~10 s of classifier training on 1,000 images.
MONITOR_CLASSIFIER = ClassifierConfig(steps=150, batch_size=64)
REAL_SUBSET = 1000  # fixed real images compared against (at most)
NN_REFERENCE = 5000  # training images a near-copy is searched among (at most)
# Direction of each criterion: +1 = higher is better.
BETTER = {"kid": -1, "coverage": +1, "diversity": +1}


def leave_one_out_nn(images: torch.Tensor) -> torch.Tensor:
    """Pixel RMS distance (0-255) of each image to its nearest *other* image of the set."""
    x = images.reshape(len(images), -1).double()
    out = torch.empty(len(x), dtype=torch.float64)
    sq = (x * x).sum(1)
    for s in range(0, len(x), 512):
        d2 = (sq[s : s + 512, None] + sq[None, :] - 2.0 * x[s : s + 512] @ x.T).clamp_min(0.0)
        d2[torch.arange(len(d2)), torch.arange(s, s + len(d2))] = float("inf")
        out[s : s + 512] = d2.min(1).values.sqrt()
    return out / math.sqrt(x.shape[1])


class Monitor:
    """Measures the trainer's generator on a fixed subset; see the module docstring."""

    def __init__(self, trainer: Trainer, per_class: int = 50, seed: int = 0) -> None:
        t0 = time.perf_counter()
        self.trainer = trainer
        data = trainer.data
        images, labels = data.images.cpu(), data.labels.cpu()
        g = torch.Generator().manual_seed(seed + 4242)
        self.num_classes = len(data.class_names)
        self.class_names = list(data.class_names)
        sub = torch.randperm(len(images), generator=g)[:REAL_SUBSET].sort().values
        self.real, self.real_labels = images[sub], labels[sub]
        ref = torch.randperm(len(images), generator=g)[:NN_REFERENCE].sort().values
        self.nn_ref = images[ref]
        self.threshold = near_copy_threshold(leave_one_out_nn(self.nn_ref))
        self.extractor = domain_extractor(images, labels, self.class_names, MONITOR_CLASSIFIER, seed=seed)
        self.real_feats = self.extractor(self.real)
        self.real_div = [
            mean_pairwise_distance(self.real_feats[self.real_labels == c]) for c in range(self.num_classes)
        ]
        conditional = trainer.conditional
        n = per_class * (self.num_classes if conditional else 1)
        self.z = torch.randn(n, trainer.cfg.model.latent_dim, generator=g)
        self.y = torch.arange(self.num_classes).repeat_interleave(per_class) if conditional else None
        self.history: list[dict[str, float]] = []
        self.judge_from = 0  # collapse is judged on history[judge_from:] (reset after a rollback)
        self.best: float | None = self._previous_best()
        self.setup_s = time.perf_counter() - t0
        hit = "loaded from cache" if self.extractor.info["cache_hit"] else "trained"
        trainer.log(f"monitor: domain classifier {hit}; ready in {self.setup_s:.1f} s")

    def _previous_best(self) -> float | None:
        """A resumed run keeps improving on the best.pt it already has."""
        path = self.trainer.run_dir / "best.pt"
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            value = state.get("monitor", {}).get(self.trainer.cfg.train.best_metric)
            return float(value) if value is not None else None
        except Exception:  # noqa: BLE001 - an unreadable best.pt is replaced by the next best
            return None

    @torch.no_grad()
    def samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images of the fixed latents from the sampling (EMA) generator, as `save_samples` draws."""
        tr = self.trainer
        gen = copy.deepcopy(tr.sampling_generator())
        recalibrate_batchnorm(
            gen, prior_batches(tr.cfg.model.latent_dim, self.num_classes, tr.conditional, tr.device)
        )
        gen.eval()
        outs = []
        for s in range(0, len(self.z), 256):
            y = self.y[s : s + 256].to(tr.device) if self.y is not None else None
            outs.append(to_uint8(gen(self.z[s : s + 256].to(tr.device), y)).cpu())
        labels = self.y if self.y is not None else torch.zeros(len(self.z), dtype=torch.long)
        return torch.cat(outs), labels

    def measure(self) -> dict[str, float]:
        """The four monitor values for the generator as it is now."""
        imgs, labels = self.samples()
        feats = self.extractor(imgs)
        kid_mean, _ = kid(self.real_feats, feats, subsets=20, subset_size=min(500, len(feats)), seed=0)
        _, coverage = density_coverage(self.real_feats, feats, k=5)
        ratios = []
        for c in range(self.num_classes if self.y is not None else 1):
            mine = feats[labels == c] if self.y is not None else feats
            real_div = self.real_div[c] if self.y is not None else mean_pairwise_distance(self.real_feats)
            if len(mine) > 1 and real_div > 0:
                ratios.append(mean_pairwise_distance(mine) / real_div)
        gen_nn, _ = pixel_nn(imgs, self.nn_ref)
        return {
            "kid": float(kid_mean),
            "coverage": float(coverage),
            "diversity": float(sum(ratios) / len(ratios)) if ratios else float("nan"),
            "diversity_min": float(min(ratios)) if ratios else float("nan"),
            "near_copy": float((gen_nn <= self.threshold).double().mean()),
        }

    def __call__(self) -> dict[str, Any]:
        """Measure, log, plot, keep best.pt, warn. Returns the logged record."""
        tr = self.trainer
        t0 = time.perf_counter()
        values = self.measure()
        step = tr.state.step
        metric = tr.cfg.train.best_metric
        value = values[metric]
        improved = not math.isnan(value) and (self.best is None or (value - self.best) * BETTER[metric] > 0)
        if improved:
            self.best = value
            state = tr.state_dict()
            state["monitor"] = {**values, "step": step}
            save_best(tr.run_dir, state)
        record: dict[str, Any] = {"step": step, **{f"monitor/{k}": v for k, v in values.items()}}
        record["monitor/best"] = float(improved)
        record["monitor/seconds"] = time.perf_counter() - t0
        self.history.append({"step": step, **values})
        tr._log_record(record)
        for line in self.warnings():
            tr.log(f"warning: {line}")
        self.plot(tr.run_dir / "monitor.png")
        return record

    def collapsed(self, factor: float = 3.0, patience: int = 2) -> str | None:
        """A collapse verdict, or None: KID above `factor` x the best KID so far at the last `patience`
        checks (a collapsed generator's KID jumps by an order of magnitude within a few hundred steps;
        ordinary noise between checks stays well under 2x)."""
        judged = self.history[self.judge_from :]
        kids = [r["kid"] for r in judged if not math.isnan(r["kid"])]
        if len(kids) <= patience:
            return None
        best = min(kids[:-patience])
        recent = kids[-patience:]
        if best > 0 and all(k > factor * best for k in recent):
            best_step = next(r["step"] for r in judged if r["kid"] == best)
            return (
                f"the monitor's KID rose from its best {best:.3g} (step {best_step}) to "
                f"{', '.join(f'{k:.3g}' for k in recent)} at the last {patience} checks: the generator collapsed"
            )
        return None

    def warnings(self) -> list[str]:
        """Collapse (diversity falling well below its peak or the data's) and memorisation (copies rising)."""
        h = self.history
        if len(h) < 2:
            return []
        now, prev = h[-1], h[-2]
        out = []
        peak = max(r["diversity"] for r in h if not math.isnan(r["diversity"]))
        if now["diversity"] < 0.7 * peak and now["diversity"] < prev["diversity"]:
            out.append(
                f"step {now['step']}: sample diversity fell to {now['diversity']:.2f} of the data's "
                f"(peak {peak:.2f}): the generator may be collapsing; best.pt keeps an earlier state"
            )
        elif now["diversity_min"] < 0.3:
            out.append(
                f"step {now['step']}: one class's samples are far less varied than its real images "
                f"({now['diversity_min']:.2f} of the data's diversity): partial mode collapse"
            )
        if now["near_copy"] > max(0.05, 2 * prev["near_copy"]) and now["near_copy"] > h[0]["near_copy"]:
            out.append(
                f"step {now['step']}: {now['near_copy']:.0%} of the samples are near-copies of training images "
                f"(expected about 1% for new images; {prev['near_copy']:.0%} at step {prev['step']}): the "
                "generator is memorising; consider stronger augmentation or stopping at best.pt"
            )
        return out

    def plot(self, path: Path) -> None:
        """RUN/monitor.png: the four values against the step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from vaemsgan.utils.io import atomic_write

        steps = [r["step"] for r in self.history]
        fig, axes = plt.subplots(1, 4, figsize=(14, 3), constrained_layout=True)
        for ax, key, title in zip(
            axes,
            ("kid", "coverage", "diversity", "near_copy"),
            ("KID (domain features) - lower is better", "coverage", "diversity / data's", "near-copy share"),
        ):
            ax.plot(steps, [r[key] for r in self.history], marker="o", ms=3)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
        plt.close(fig)
