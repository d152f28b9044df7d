"""Training: finite losses, outputs written, exact resume, data-order determinism, NaN guard."""

from __future__ import annotations

import json

import pytest
import torch

from vaemsgan.checkpoint import list_checkpoints, load_checkpoint
from vaemsgan.training.recovery import NonFiniteLossError
from vaemsgan.training.trainer import Trainer
from vaemsgan.utils.images import to_float


def _weights(tr: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in tr.nets.modules().items():
        out.update({f"{name}.{k}": v.clone() for k, v in m.state_dict().items()})
    if tr.ema is not None:
        out.update({f"ema.{k}": v.clone() for k, v in tr.ema.model.state_dict().items()})
    return out


def test_thirty_steps_finite_and_outputs_written(tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config()
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False)
    tr.train(30)
    assert tr.state.step == 30
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    for r in records:
        for k in ("d_loss", "g_loss", "kl", "feat_rec", "pix_rec", "d_class", "g_class"):
            assert torch.isfinite(torch.tensor(r[k])), (k, r)
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["step-0000010.pt", "step-0000020.pt", "step-0000030.pt"]
    state = load_checkpoint(ckpts[-1])
    assert state["step"] == 30 and state["class_names"] == ["trouser", "sneaker"]
    assert state["config"]["model"]["latent_dim"] == 16
    assert (tmp_path / "run" / "samples.png").is_file() and (tmp_path / "run" / "config.yaml").is_file()


def test_stop_and_resume_gives_identical_weights(tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config()
    full = Trainer(cfg, tiny_images, tmp_path / "full", progress=False)
    full.train(30)

    first = Trainer(cfg, tiny_images, tmp_path / "split", progress=False)
    first.train(15)
    first.save()
    second = Trainer(cfg, tiny_images, tmp_path / "split", progress=False)
    assert second.resume()
    assert second.state.step == 15
    second.train(30)
    a, b = _weights(full), _weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_channels_last_trains_the_same_model(tmp_path, tiny_config, tiny_images) -> None:
    """The NHWC layout is a speed choice only: after some steps the weights match the NCHW run's up to float
    rounding, and its networks really are channels-last."""
    runs = {}
    for cl in (False, True):
        cfg = tiny_config(train={"channels_last": cl})
        runs[cl] = Trainer(cfg, tiny_images, tmp_path / str(cl), progress=False, log=lambda s: None)
        runs[cl].train(6)
    convs = [m for m in runs[True].nets.critic.modules() if isinstance(m, torch.nn.Conv2d)]
    conv = next(m for m in convs if m.in_channels > 1)  # with one channel both layouts coincide
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    a, b = _weights(runs[False]), _weights(runs[True])
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-4), k


def test_lr_milestones_multiply_every_rate_and_survive_resume(tmp_path, tiny_config, tiny_images) -> None:
    """MultiStepLR semantics: rates x gamma at each milestone step; a run resumed between the milestones has
    the same rates and weights as an uninterrupted one."""
    cfg = tiny_config(
        train={"lr_g": 4e-4, "lr_d": 2e-4, "lr_e": 1e-4, "lr_milestones": [4, 8], "lr_gamma": 0.5}
    )

    def rates(tr: Trainer) -> list[float]:
        return [g["lr"] for o in tr._optimizers().values() for g in o.param_groups]

    full = Trainer(cfg, tiny_images, tmp_path / "full", progress=False, log=lambda s: None)
    full.train(3)
    assert rates(full) == pytest.approx([4e-4, 2e-4, 1e-4])
    full.train(4)
    assert rates(full) == pytest.approx([2e-4, 1e-4, 0.5e-4])
    full.train(10)
    assert rates(full) == pytest.approx([1e-4, 0.5e-4, 0.25e-4])

    first = Trainer(cfg, tiny_images, tmp_path / "split", progress=False, log=lambda s: None)
    first.train(6)
    first.save()
    second = Trainer(cfg, tiny_images, tmp_path / "split", progress=False, log=lambda s: None)
    assert second.resume() and rates(second) == pytest.approx([2e-4, 1e-4, 0.5e-4])
    second.train(10)
    assert rates(second) == rates(full)
    a, b = _weights(full), _weights(second)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_milestones_are_checked(tiny_config) -> None:
    from vaemsgan.config import ConfigError

    with pytest.raises(ConfigError, match="train.lr_milestones"):
        tiny_config(train={"lr_milestones": [0]})


def test_checkpoints_are_pruned_to_keep(tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config(train={"keep": 2, "checkpoint_every": 5})
    Trainer(cfg, tiny_images, tmp_path / "r", progress=False).train(20)
    assert [p.name for p in list_checkpoints(tmp_path / "r")] == ["step-0000015.pt", "step-0000020.pt"]


def test_data_order_is_a_seeded_permutation_per_epoch(tiny_config, tiny_images, tmp_path) -> None:
    tr = Trainer(tiny_config(), tiny_images, tmp_path, progress=False)
    per_epoch = len(tiny_images) // tr.batch_size
    batches = [tr.next_batch() for _ in range(2 * per_epoch)]
    first = torch.cat([x for x, _ in batches[:per_epoch]])
    assert (
        len({tuple(v.flatten().tolist()) for v in first}) == per_epoch * tr.batch_size
    )  # no repeats in an epoch
    second = torch.cat([x for x, _ in batches[per_epoch:]])
    assert not torch.equal(first, second)  # a new order each epoch
    again = Trainer(tiny_config(), tiny_images, tmp_path, progress=False)
    assert all(torch.equal(again.next_batch()[0], x) for x, _ in batches[:3])  # same seed, same order


@pytest.mark.parametrize("preset", ["paper", "dcgan", "cdcgan-wgan-gp", "vae", "vaegan"])
def test_presets_train_a_few_steps(preset: str, tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config(preset)
    tr = Trainer(cfg, tiny_images, tmp_path / preset, progress=False)
    tr.train(3)
    last = tr.state.history[-1]
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())


def test_options_hinge_r1_lazy_pixel_augment(tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config(
        loss={
            "adversarial": "hinge",
            "r1_gamma": 1.0,
            "gp_every": 2,
            "pixel_recon_weight": 1.0,
            "gamma": 0.5,
        },
        train={"augment": "color,translation,cutout", "ada_target": 0.6, "n_critic": 2},
    )
    tr = Trainer(cfg, tiny_images, tmp_path, progress=False)
    tr.train(4)
    rec = tr.state.history[-1]
    assert "r1" in rec and "pix_rec" in rec and "ada_p" in rec


def test_encoder_ignores_the_gan_term(tmp_path, tiny_config, tiny_images) -> None:
    """Larsen's rule: with no KL or reconstruction weight, the encoder receives no gradient at all."""
    cfg = tiny_config(
        loss={"kl_weight": 0.0, "feature_recon_weight": 0.0, "pixel_recon_weight": 0.0, "rec_as_fake": True}
    )
    tr = Trainer(cfg, tiny_images, tmp_path, progress=False)
    x, y = tr.next_batch()
    tr.generator_step(x, y)
    grads = [p.grad for p in tr.nets.encoder.parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)


def test_non_finite_losses_skip_steps_then_stop(tmp_path, tiny_config, tiny_images) -> None:
    tr = Trainer(tiny_config(), tiny_images, tmp_path, progress=False, log=lambda s: None)
    before = {k: v.clone() for k, v in tr.nets.generator.state_dict().items()}
    with torch.no_grad():
        tr.nets.critic.critics[0].head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="diverged"):
        tr.train(10)
    assert not list_checkpoints(tmp_path)  # no NaN checkpoint
    after = tr.nets.generator.state_dict()
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if not k.endswith("num_batches_tracked") and "running" not in k
    )


def test_class_head_learns_the_real_classes_and_pushes_the_generator(
    tmp_path, tiny_config, tiny_images
) -> None:
    """AC-GAN term: the critic's class head is trained on real labels (accuracy rises from chance) and
    the generator step receives a class loss on its fakes; without the weight there is no head."""
    plain = Trainer(tiny_config(loss={"class_weight": 0.0}), tiny_images, tmp_path / "plain", progress=False)
    assert plain.nets.critic(*plain.next_batch()).class_logits is None
    cfg = tiny_config(loss={"class_weight": 1.0, "adversarial": "ns", "drift": 0.0}, train={"lr_d": 2e-3})
    tr = Trainer(cfg, tiny_images, tmp_path / "ac", progress=False)
    x_all, y_all = to_float(tiny_images.images), tiny_images.labels

    def accuracy() -> float:
        tr.nets.critic.eval()
        with torch.no_grad():
            logits = tr.nets.critic(x_all, y_all).class_logits
        tr.nets.critic.train()
        return (logits.argmax(1) == y_all).float().mean().item()

    first = [tr.critic_step(*tr.next_batch())["d_class"].item() for _ in range(2)]
    for _ in range(40):
        last = tr.critic_step(*tr.next_batch())["d_class"].item()
    assert last < 0.5 * first[0] and accuracy() >= 0.9
    out = tr.generator_step(*tr.next_batch())
    assert "g_class" in out and torch.isfinite(out["g_class"])


def test_snapshots_at_cpu_minute_marks_and_cpu_clock_survives_resume(
    tmp_path, tiny_config, tiny_images, request
) -> None:
    """Each mark is passed once: the snapshot holds the state at the first step past it, and a resumed run
    continues the training CPU clock (so a CPU budget and later marks stay where they were)."""
    from vaemsgan.checkpoint import snapshot_path

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time per step is then independent of other load on the machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    marks = [0.005, 0.05]  # 0.3 and 3 s of training CPU time
    cfg = tiny_config(train={"snapshot_minutes": marks, "checkpoint_every": 1000})
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False)
    tr.train(10**6, deadline=60.0 * marks[0], clock=tr.cpu_clock)
    assert tr.deadline_reached and tr.state.cpu_seconds >= 60.0 * marks[0]
    first = load_checkpoint(snapshot_path(tmp_path / "run", marks[0]))
    assert first["snapshot"]["cpu_seconds"] >= 60.0 * marks[0]
    assert first["snapshot"]["step"] == first["step"] <= tr.state.step
    assert snapshot_path(tmp_path / "run", marks[0]).with_suffix(".png").is_file()
    assert not snapshot_path(tmp_path / "run", marks[1]).exists()
    spent = tr.state.cpu_seconds
    # Resume from the saved checkpoint: the clock starts where the run stopped, not at zero.
    tr2 = Trainer(cfg, tiny_images, tmp_path / "run", progress=False)
    assert tr2.resume() and tr2.state.cpu_seconds == pytest.approx(spent)
    tr2.train(10**6, deadline=60.0 * marks[1], clock=tr2.cpu_clock)
    second = load_checkpoint(snapshot_path(tmp_path / "run", marks[1]))
    assert second["snapshot"]["cpu_seconds"] >= 60.0 * marks[1]
    assert second["step"] > first["step"]
    # The first snapshot was not rewritten by the resumed run.
    assert load_checkpoint(snapshot_path(tmp_path / "run", marks[0]))["step"] == first["step"]


def _scripted_monitor(tr: Trainer, kids: list[float]):
    """The real Monitor's bookkeeping (best.pt, history, collapse verdict) with scripted KID values; as in a
    collapse, the coverage falls where the KID rises (0.5 up to a KID of 2, 0.2 above)."""
    from vaemsgan.evaluation.monitor import Monitor

    mon = Monitor(tr.cfg, tr.data, tr.run_dir)
    mon.ready = True  # no domain classifier: the values are scripted
    mon.warmup_checks = 1  # the rollback mechanics, not the warm-up (tests/test_monitor_alarm.py)
    values = iter(kids)

    def measure(sample: object) -> dict[str, float]:
        kid = next(values)
        coverage = 0.5 if kid <= 2.0 else 0.2
        return {"kid": kid, "coverage": coverage, "diversity": 1.0, "diversity_min": 1.0, "near_copy": 0.0}

    mon.measure = measure  # type: ignore[method-assign]
    mon.plot = lambda path: None  # type: ignore[method-assign]
    return mon


def test_collapse_verdict_needs_two_checks_far_above_the_best() -> None:
    from vaemsgan.evaluation.monitor import Monitor

    mon = object.__new__(Monitor)
    mon.judge_from = 0
    mon.warmup_checks = 1  # the 3x / two-checks rule alone (the warm-up: tests/test_monitor_alarm.py)
    mon.history = [{"step": 100 * i, "kid": k, "coverage": 0.5} for i, k in enumerate([5.0, 1.0, 2.5, 2.9])]
    assert mon.collapsed() is None  # noise below 3x the best
    mon.history += [{"step": 500, "kid": 3.5, "coverage": 0.3}]
    assert mon.collapsed() is None  # one check above 3x is not yet a collapse
    mon.history += [{"step": 600, "kid": 9.0, "coverage": 0.5}]
    assert mon.collapsed() is None  # 9x with the coverage of the best check: a drift, not a collapse
    mon.history[-1]["coverage"] = 0.3
    assert "best 1 (step 100)" in mon.collapsed()
    mon.judge_from = 4  # after a rollback only the checks since then count
    assert mon.collapsed() is None


def test_resumed_monitor_continues_the_logged_history(tmp_path, tiny_config, tiny_images) -> None:
    """A resumed run's monitor reads the checks already in metrics.jsonl (before its first own check; a
    half line and a non-monitor record are skipped), so that monitor.png and the collapse verdict span
    the whole run: a best KID logged before the resume still counts."""
    import json

    from vaemsgan.evaluation.monitor import Monitor

    run = tmp_path / "run"
    run.mkdir()
    logged = [
        {"step": 5, "d_loss": 0.5},
        {
            "step": 5,
            "monitor/kid": 2.0,
            "monitor/coverage": 0.4,
            "monitor/diversity": 0.9,
            "monitor/diversity_min": 0.8,
            "monitor/near_copy": 0.0,
            "monitor/best": 1.0,
        },
        {
            "step": 10,
            "monitor/kid": 1.0,
            "monitor/coverage": 0.5,
            "monitor/diversity": 0.9,
            "monitor/diversity_min": 0.8,
            "monitor/near_copy": 0.0,
            "monitor/best": 1.0,
        },
    ]
    logged.append({**logged[-1], "step": 12})  # a third check: the warm-up is over before the resume
    text = "".join(json.dumps(r) + "\n" for r in logged) + '{"step": 13, "monitor/k'
    (run / "metrics.jsonl").write_text(text)
    cfg = tiny_config(train={"monitor_every": 5})
    mon = Monitor(cfg, tiny_images, run)
    mon.setup = lambda log: setattr(mon, "ready", True)  # type: ignore[method-assign]
    kids = iter([10.0, 10.0])
    mon.measure = lambda sample: {  # type: ignore[method-assign]
        "kid": next(kids),
        "coverage": 0.3,  # fallen from the logged best's 0.5: a collapse, not a drift
        "diversity": 1.0,
        "diversity_min": 1.0,
        "near_copy": 0.0,
    }
    first = mon(lambda z, y: z, 15, lambda s: None)
    assert [r["step"] for r in mon.history] == [5, 10, 12, 15]
    assert mon.history[1]["kid"] == 1.0 and first.collapse is None
    second = mon(lambda z, y: z, 20, lambda s: None)
    # the best is the first post-warm-up check, logged before the resume (step 12; steps 5 and 10 are the warm-up)
    assert second.collapse is not None and "best 1 (step 12)" in second.collapse
    assert (run / "monitor.png").stat().st_size > 1000


def test_collapse_rolls_back_to_best_with_halved_learning_rates(tmp_path, tiny_config, tiny_images) -> None:
    cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 1000, "nan_rollbacks": 1})
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lambda s: None)
    # Checks at steps 5, 10, 15, 20: best at 10, then twice 10x worse -> roll back to step 10.
    tr.monitor = _scripted_monitor(tr, [2.0, 1.0, 10.0, 10.0, 1.5, 1.4, 1.3, 20.0, 20.0, 1.0])
    lr0 = tr.opt_g.param_groups[0]["lr"]
    tr.train(20)
    assert tr.state.collapse_rollbacks == 1
    assert tr.state.step == 20  # after the rollback to step 10 it trained on to the step target
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(lr0 / 2)
    assert tr.opt_d.param_groups[0]["lr"] == pytest.approx(lr0 / 2)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == 10
    # A second collapse with no rollbacks left stops the run (best.pt is still the state of step 10).
    tr.train(60)
    assert tr.stop_requested and tr.state.step < 60


def test_collapse_rollbacks_to_the_same_best_compose_their_halvings(
    tmp_path, tiny_config, tiny_images
) -> None:
    """Two collapses rolled back to the same best.pt: the rates are x0.5 then x0.25 of best.pt's, not x0.5
    twice (that would replay the first retry's trajectory exactly)."""
    cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 1000, "nan_rollbacks": 3})
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lambda s: None)
    tr.monitor = _scripted_monitor(tr, [2.0, 1.0, 10.0, 10.0])  # best.pt at step 10
    lr0 = {name: o.param_groups[0]["lr"] for name, o in tr._optimizers().items()}
    assert set(lr0) == {"generator", "critic", "encoder"}  # the encoder's rate is scaled too
    tr.train(15)
    assert tr._after_collapse_check("scripted collapse") and tr.state.step == 10
    lr1 = {name: o.param_groups[0]["lr"] for name, o in tr._optimizers().items()}
    assert lr1 == pytest.approx({name: lr / 2 for name, lr in lr0.items()})
    assert tr._after_collapse_check("scripted collapse again") and tr.state.step == 10
    assert tr.state.collapse_rollbacks == 2
    lr2 = {name: o.param_groups[0]["lr"] for name, o in tr._optimizers().items()}
    assert lr2 == pytest.approx({name: lr / 4 for name, lr in lr0.items()})


def test_collapse_rollback_discards_the_abandoned_checkpoints(tmp_path, tiny_config, tiny_images) -> None:
    """After a rollback to best.pt (step 10), the checkpoints of steps 15 and 20 belong to the collapsed
    trajectory: they are deleted, so that a resume (highest step) continues the rolled-back run."""
    from vaemsgan.checkpoint import list_checkpoints, load_latest_valid

    cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 5, "nan_rollbacks": 1, "keep": 10})
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lambda s: None)
    tr.monitor = _scripted_monitor(tr, [2.0, 1.0, 3.0, 3.0])  # best at 10; no verdict (3x needs > 3)
    tr.train(20)
    before = [p.name for p in list_checkpoints(tmp_path / "run")]
    assert "step-0000020.pt" in before and "step-0000015.pt" in before
    assert tr._after_collapse_check("scripted collapse")  # what the monitor's verdict triggers
    assert tr.state.step == 10
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-0000005.pt", "step-0000010.pt"]
    state = load_latest_valid(tmp_path / "run")
    assert state is not None and state["step"] == 10


def test_collapse_action_stop_and_warn(tmp_path, tiny_config, tiny_images) -> None:
    for action, stops in (("stop", True), ("warn", False)):
        cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 1000, "collapse_action": action})
        lines: list[str] = []
        tr = Trainer(cfg, tiny_images, tmp_path / action, progress=False, log=lines.append)
        tr.monitor = _scripted_monitor(tr, [1.0, 5.0, 5.0, 5.0])
        tr.train(20)
        assert (tr.state.step < 20) == stops and tr.state.collapse_rollbacks == 0
        assert any("collapsed" in line for line in lines)


def test_monitor_plot_splits_off_the_rolled_back_checks(tmp_path, tiny_config, tiny_images) -> None:
    """Two rollbacks (checks at steps 15 and 20, then again 15): monitor.png draws the kept trajectory as
    one line and each abandoned stretch apart, instead of joining them."""
    from vaemsgan.evaluation.monitor import Monitor
    from vaemsgan.evaluation.monitor_plot import split_rolled_back

    def rec(step: int, kid: float) -> dict[str, float]:
        return {
            "step": step,
            "kid": kid,
            "coverage": 0.5,
            "diversity": 1.0,
            "diversity_min": 1.0,
            "near_copy": 0.0,
        }

    history = [
        rec(5, 9),
        rec(10, 1),
        rec(15, 8),
        rec(20, 9),
        rec(15, 2),
        rec(20, 3),
        rec(25, 7),
        rec(15, 1.5),
    ]
    history.append(rec(20, 1.2))
    kept, abandoned = split_rolled_back(history)
    assert [(r["step"], r["kid"]) for r in kept] == [(5, 9), (10, 1), (15, 1.5), (20, 1.2)]
    assert [[(r["step"], r["kid"]) for r in a] for a in abandoned] == [
        [(15, 8), (20, 9)],
        [(15, 2), (20, 3), (25, 7)],
    ]
    assert split_rolled_back(history[:4]) == (history[:4], [])
    mon = Monitor(tiny_config(train={"monitor_every": 5}), tiny_images, tmp_path)
    mon.history = history
    mon.plot(tmp_path / "monitor.png")
    assert (tmp_path / "monitor.png").stat().st_size > 1000
