"""The monitor's false alarm (issue 23, item 7): no collapse verdict while the generator is still noise, and
no rollback, again and again, to the same state."""

from __future__ import annotations

from typing import Any

import pytest

from vaemsgan.checkpoint import list_checkpoints, load_checkpoint
from vaemsgan.training.outputs import MonitorCheck
from vaemsgan.training.trainer import Trainer


def _monitor(tmp_path, tiny_config, tiny_images, values: list[tuple[float, ...]]):
    """The real Monitor's bookkeeping with scripted (KID, coverage[, diversity]) values (diversity 1.0 where
    not given)."""
    from vaemsgan.evaluation.monitor import Monitor

    mon = Monitor(tiny_config(train={"monitor_every": 100}), tiny_images, tmp_path)
    mon.ready = True  # no domain classifier: the values are scripted
    it = iter(values)

    def measure(sample: Any) -> dict[str, float]:
        kid, coverage, diversity = (*next(it), 1.0)[:3]
        return {
            "kid": kid,
            "coverage": coverage,
            "diversity": diversity,
            "diversity_min": diversity,
            "near_copy": 0.0,
        }

    mon.measure = measure  # type: ignore[method-assign]
    mon.plot = lambda path: None  # type: ignore[method-assign]
    return mon


def _checks(mon, steps: range, log: list[str]) -> list[str | None]:
    return [mon(lambda z, y: z, step, log.append).collapse for step in steps]


def test_noise_of_the_first_minutes_gives_no_collapse_verdict(tmp_path, tiny_config, tiny_images) -> None:
    """The MSTAR run at 64 px: KID 4.7e3, 4.0e4, 7.7e4 while the samples were still noise (coverage ~0). The
    old rule (3x the best twice in a row) declared a collapse at the third check and rolled back."""
    # (the fourth check a lucky 5.1e3 after the warm-up, so that a 3x rise follows: a note, no verdict)
    noise = [(4.7e3, 0.01), (4.0e4, 0.0), (7.7e4, 0.0), (5.1e3, 0.02), (9.0e4, 0.0), (3.0e4, 0.01)]
    log: list[str] = []
    mon = _monitor(tmp_path, tiny_config, tiny_images, noise)
    assert _checks(mon, range(100, 700, 100), log) == [None] * 6
    notes = [line for line in log if "not reached quality" in line]
    assert len(notes) == 1 and "4.7e+03 (step 100)" in notes[0]  # said once, with the reference
    # The first check need not be the best: 4.7e3 is half of 9e3, still noise.
    mon = _monitor(tmp_path, tiny_config, tiny_images, [(9e3, 0.0), (4.7e3, 0.0), (4.0e4, 0.0), (7.7e4, 0.0)])
    assert _checks(mon, range(100, 500, 100), []) == [None] * 4


def test_a_fall_from_a_good_state_is_still_a_collapse(tmp_path, tiny_config, tiny_images) -> None:
    # KID fell 50x from the first check (coverage stays low: the KID rule alone), then rose 6-8x.
    mon = _monitor(
        tmp_path, tiny_config, tiny_images, [(500, 0.1), (50, 0.2), (10, 0.3), (60, 0.2), (80, 0.1)]
    )
    verdicts = _checks(mon, range(100, 600, 100), [])
    assert verdicts[:4] == [None] * 4 and "best 10 (step 300)" in verdicts[4]
    # Noise first, then quality (900 <= 4.7e3 / 4), then a fall from it.
    mon = _monitor(
        tmp_path,
        tiny_config,
        tiny_images,
        [(4.7e3, 0.0), (4.0e4, 0.0), (7.7e4, 0.0), (900, 0.3), (800, 0.4), (9e3, 0.1), (9e3, 0.1)],
    )
    verdicts = _checks(mon, range(100, 800, 100), [])
    assert verdicts[:6] == [None] * 6 and "best 800 (step 500)" in verdicts[6]
    # A first check that is already good (KID never falls 4x): coverage 0.5 or more says the run had quality,
    # from the third check on (the warm-up).
    good = [(2.0, 0.7), (1.5, 0.8), (1.4, 0.8), (9.0, 0.3), (9.0, 0.3)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, good)
    assert _checks(mon, range(100, 600, 100), [])[4] is not None
    mon = _monitor(
        tmp_path, tiny_config, tiny_images, [(2.0, 0.3), (1.5, 0.4), (1.4, 0.4), (9.0, 0.3), (9.0, 0.3)]
    )
    assert _checks(mon, range(100, 600, 100), []) == [None] * 5


def test_quality_is_not_judged_during_the_warm_up(tmp_path, tiny_config, tiny_images) -> None:
    """One lucky early check is no quality: the 64 px SAR run's KID went 15,466 -> 1,092 -> 2,939 in its first
    300 steps (noise); a rise from the second check's 1,092 is no collapse."""
    early = [(15466, 0.0), (1092, 0.04), (4000, 0.08), (4500, 0.05), (5000, 0.05)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, early)
    assert _checks(mon, range(100, 600, 100), []) == [None] * 5
    assert mon.quality_check() is None
    # The same values from the third check on count (1,092 <= 15,466 / 4 at step 300, with a coverage of 0.3
    # beside it), then a 4x rise.
    later = [(15466, 0.0), (9000, 0.0), (1092, 0.3), (2000, 0.3), (4000, 0.2), (4500, 0.2)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, later)
    verdicts = _checks(mon, range(100, 700, 100), [])
    assert verdicts[:5] == [None] * 5 and "best 1.09e+03 (step 300)" in verdicts[5]


# Monitor checks of gain unit n27's GAN seed 1 (27 MSTAR chips per class, its monitor classifier trained on
# those 270 chips), steps 100-2,400 (KID, coverage). The rule before session 15 said quality at step 500 (KID
# 4.8e4 <= 2.3e5 / 4) and rolled the run back there at step 2,400; judged by the classifier trained on all
# 2,747 chips the run improved all along (chips classed as intended 45% at step 600, 80% at step 2,400).
SMALL_SET_RUN = [
    (228196, 0.0), (77048, 0.074), (94021, 0.111), (107513, 0.048), (47908, 0.167), (47875, 0.193),
    (67506, 0.141), (86884, 0.107), (86408, 0.078), (73082, 0.089), (86489, 0.081), (88017, 0.081),
    (96087, 0.074), (92352, 0.096), (100413, 0.089), (124605, 0.081), (141800, 0.059), (148868, 0.07),
    (142610, 0.081), (136158, 0.074), (137602, 0.067), (142523, 0.067), (151280, 0.07), (145620, 0.052),
]  # fmt: skip


def test_a_kid_fall_without_coverage_is_no_quality(tmp_path, tiny_config, tiny_images) -> None:
    """A KID fall from the first check counts as quality only with a coverage of 0.25 beside it: the small-set
    run's monitor gets no verdict, says once why, and keeps no best state (best.pt) from checks that rank
    blobs."""
    from vaemsgan.evaluation.monitor import Monitor

    log: list[str] = []
    mon = _monitor(tmp_path, tiny_config, tiny_images, SMALL_SET_RUN)
    checks = [mon(lambda z, y: z, 100 * (i + 1), log.append) for i in range(len(SMALL_SET_RUN))]
    assert [c.collapse for c in checks] == [None] * len(SMALL_SET_RUN)
    assert all(c.best is None for c in checks) and mon.quality_check() is None
    notes = [line for line in log if "not reached quality" in line]
    assert len(notes) == 1 and "with a coverage of 0.25" in notes[0]
    # The same KIDs with coverage 0.25 at steps 500 and 600 and 0.15 after: quality there, the best state from
    # then on (steps 500, 600), and the rise from it, coverage lost beside it, a collapse.
    covered = [(k, c if i < 4 else 0.25 if i < 6 else 0.15) for i, (k, c) in enumerate(SMALL_SET_RUN)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, covered)
    checks = [mon(lambda z, y: z, 100 * (i + 1), lambda s: None) for i in range(len(covered))]
    assert [c.best["step"] for c in checks if c.best is not None] == [500, 600]
    first = next(i for i, c in enumerate(checks) if c.collapse is not None)
    assert "best 4.79e+04 (step 600)" in checks[first].collapse
    assert Monitor.quality_check(mon)["step"] == 500


def test_the_rise_is_judged_from_the_check_that_showed_quality(tmp_path, tiny_config, tiny_images) -> None:
    """A low KID before the run reached quality is not the reference of a collapse (nor best.pt, the state a
    rollback returns to): the rise is measured from the best check since quality."""
    values = [
        (1e5, 0.0),
        (9e4, 0.0),
        (1e4, 0.1),
        (5e4, 0.3),
        (2.4e4, 0.5),
        (3e4, 0.5),
        (8e4, 0.3),
        (8e4, 0.3),
    ]
    mon = _monitor(tmp_path, tiny_config, tiny_images, values)
    checks = [mon(lambda z, y: z, 100 * (i + 1), lambda s: None) for i in range(len(values))]
    # 1e4 (step 300, coverage 0.1) and 5e4 (coverage 0.3 but KID above 1e5 / 4) are no quality; 2.4e4 with
    # coverage 0.5 is. 8e4 is 8x 1e4 but 3.3x the best since quality (2.4e4).
    assert [c.best["step"] for c in checks if c.best is not None] == [500]
    assert checks[-1].collapse is not None and "best 2.4e+04 (step 500)" in checks[-1].collapse
    assert all(c.collapse is None for c in checks[:-1])


def test_after_a_rollback_the_reference_stays_the_run_s_first_check(
    tmp_path, tiny_config, tiny_images
) -> None:
    """After a rollback the rise is judged from the best check since then, but the quality the run had reached
    (against its real first check) still counts: the state rolled back to had it."""
    values = [(500, 0.1), (50, 0.2), (10, 0.3), (60, 0.2), (80, 0.1)] + [
        (12, 0.3),
        (11, 0.3),
        (60, 0.2),
        (70, 0.2),
    ]
    mon = _monitor(tmp_path, tiny_config, tiny_images, values)
    assert _checks(mon, range(100, 600, 100), [])[-1] is not None
    mon.rolled_back()  # the trainer went back to best.pt (step 300)
    verdicts = _checks(mon, range(400, 800, 100), [])
    assert verdicts[:3] == [None] * 3 and "best 11 (step 500)" in verdicts[3]


# Monitor checks of the CIFAR-10 `default` run (session 19; the `cifar` judge's features; every 500 steps to step
# 15,000): (KID, coverage, diversity). Its best KID, 0.519 at step 10,000, was followed by 1.72 and 1.98 at steps
# 14,500 and 15,000 (3.3x and 3.8x), coverage and diversity unchanged, and its domain FID and TSTR held or
# improved from 30 to 60 CPU-minutes (steps 7,068 -> 13,717): the 3x rule alone rolled it back to step 10,000.
CIFAR_DEFAULT_RUN = [
    (33.2, 0.521, 0.769), (19.1, 0.638, 0.767), (15.7, 0.715, 0.777), (12.5, 0.772, 0.774), (9.89, 0.798, 0.793),
    (7.99, 0.822, 0.802), (6.35, 0.818, 0.804), (4.07, 0.842, 0.820), (3.17, 0.839, 0.832), (2.33, 0.859, 0.834),
    (1.56, 0.852, 0.844), (1.33, 0.858, 0.849), (1, 0.864, 0.853), (1.17, 0.851, 0.847), (0.872, 0.862, 0.846),
    (0.847, 0.871, 0.846), (0.897, 0.860, 0.851), (0.586, 0.841, 0.857), (0.646, 0.835, 0.856), (0.519, 0.840, 0.861),
    (0.75, 0.836, 0.862), (0.813, 0.822, 0.867), (1.34, 0.845, 0.866), (1.5, 0.835, 0.866), (1.49, 0.839, 0.867),
    (1.38, 0.828, 0.868), (1.37, 0.839, 0.869), (1.53, 0.846, 0.869), (1.72, 0.834, 0.869), (1.98, 0.838, 0.872),
]  # fmt: skip


def test_a_kid_drift_near_its_floor_with_nothing_else_lost_is_no_collapse(
    tmp_path, tiny_config, tiny_images
) -> None:
    """The CIFAR-10 run's checks give no verdict; the same KIDs with the coverage, or the diversity, fallen to
    0.8x the best check's at the last two checks do, and so does a 10x jump with nothing else moving."""
    mon = _monitor(tmp_path, tiny_config, tiny_images, CIFAR_DEFAULT_RUN)
    steps = range(500, 15_500, 500)
    checks = [mon(lambda z, y: z, step, lambda s: None) for step in steps]
    assert [c.collapse for c in checks] == [None] * len(CIFAR_DEFAULT_RUN)
    assert [c.best["step"] for c in checks if c.best is not None][-1] == 10_000  # best.pt stays at the best
    # Coverage fallen to 0.8x the best check's (0.84 -> 0.672) at both of the last two checks: a collapse.
    for fallen in ((1.72, 0.672, 0.869), (1.98, 0.672, 0.872)), ((1.72, 0.834, 0.688), (1.98, 0.838, 0.688)):
        mon = _monitor(tmp_path, tiny_config, tiny_images, CIFAR_DEFAULT_RUN[:-2] + list(fallen))
        verdicts = _checks(mon, steps, [])
        assert verdicts[:-1] == [None] * (len(steps) - 1)
        assert "best 0.519 (step 10000)" in verdicts[-1] and "collapsed" in verdicts[-1]
    # At one of them only: no verdict yet (two checks in a row).
    one = [(1.72, 0.834, 0.869), (1.98, 0.672, 0.872)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, CIFAR_DEFAULT_RUN[:-2] + one)
    assert _checks(mon, steps, []) == [None] * len(steps)
    # An order of magnitude with nothing else moving.
    jump = [(5.3, 0.834, 0.869), (6.0, 0.838, 0.872)]
    mon = _monitor(tmp_path, tiny_config, tiny_images, CIFAR_DEFAULT_RUN[:-2] + jump)
    assert _checks(mon, steps, [])[-1] is not None


class ScriptedMonitor:
    """A TrainingMonitor that says, per call, whether this is the best state so far and whether it collapsed."""

    def __init__(self, script: list[tuple[bool, bool]]) -> None:
        self.script = list(script)
        self.rollbacks = 0

    def __call__(self, sample: Any, step: int, log: Any) -> MonitorCheck:
        best, collapsed = self.script.pop(0) if self.script else (False, True)
        return MonitorCheck(
            {"step": step, "monitor/kid": 1.0},
            {"step": step, "kid": 1.0} if best else None,
            "scripted collapse" if collapsed else None,
        )

    def rolled_back(self) -> None:
        self.rollbacks += 1


def _lr(tr: Trainer) -> float:
    return tr.opt_g.param_groups[0]["lr"]


def test_no_second_rollback_to_the_same_state(tmp_path, tiny_config, tiny_images) -> None:
    """The MSTAR run rolled back to step 200 three times (rates x0.5, x0.25, x0.125) and ended at step 203.
    Now: one rollback to best.pt (step 5); when the run collapses again from there, training goes on without
    a rollback, said once, and a resumed run keeps to that."""
    cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 1000, "nan_rollbacks": 3})
    lines: list[str] = []
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lines.append)
    lr0 = _lr(tr)
    tr.monitor = mon = ScriptedMonitor([(True, False)])  # best at step 5, a collapse at every later check
    tr.train(20)
    assert tr.state.step == 20 and not tr.stop_requested
    assert tr.state.collapse_rollbacks == 1 and mon.rollbacks == 1
    assert _lr(tr) == pytest.approx(lr0 / 2)
    declined = [line for line in lines if "again after the rollback to best.pt (step 5)" in line]
    assert len(declined) == 1 and "best.pt keeps the best state" in declined[0]
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == 5
    # The rollback wrote the state it landed on, so a resume right after it continues the rolled-back run.
    assert "step-0000005.pt" in [p.name for p in list_checkpoints(tmp_path / "run")]
    # Resumed: the landing and the declined rollback are in the checkpoint; no rollback, no second warning.
    lines.clear()
    tr2 = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lines.append)
    assert tr2.resume() and tr2.state.step == 20
    assert (tr2.state.collapse_landed, tr2.state.collapse_kept) == (5, 5)
    tr2.monitor = ScriptedMonitor([])
    tr2.train(30)
    assert tr2.state.step == 30 and tr2.state.collapse_rollbacks == 1
    assert not any("again after the rollback" in line for line in lines)
    assert _lr(tr2) == pytest.approx(lr0 / 2)


def test_a_new_best_can_be_rolled_back_to_again(tmp_path, tiny_config, tiny_images) -> None:
    """The declined rollback is only to the state the last one landed on: a later best.pt is a new state."""
    cfg = tiny_config(train={"monitor_every": 5, "checkpoint_every": 1000, "nan_rollbacks": 3})
    tr = Trainer(cfg, tiny_images, tmp_path / "run", progress=False, log=lambda s: None)
    lr0 = _lr(tr)
    # Steps 5 (best), 10 (collapse: back to 5), 10 (collapse: declined), 15 (best), 20 (collapse: back to 15), 20.
    script = [(True, False), (False, True), (False, True), (True, False), (False, True), (False, False)]
    tr.monitor = ScriptedMonitor(script)
    tr.train(20)
    assert tr.state.step == 20 and tr.state.collapse_rollbacks == 2 and tr.state.collapse_landed == 15
    assert _lr(tr) == pytest.approx(lr0 / 4)  # x0.5 at each rollback


def test_diversity_falling_from_noise_is_no_collapse_warning(tmp_path, tiny_config, tiny_images) -> None:
    """Noise is more varied than the data (1.4x on SAR chips); diversity falling toward the data's while the
    run has not reached quality is learning. Once it has, the same fall is warned about."""
    from vaemsgan.evaluation.monitor import Monitor

    def run(kids: list[float], divs: list[float], coverage: float = 0.05) -> list[str]:
        mon = Monitor(tiny_config(train={"monitor_every": 100}), tiny_images, tmp_path)
        mon.ready = True
        it = iter(zip(kids, divs))

        def measure(sample: Any) -> dict[str, float]:
            kid, div = next(it)
            return {
                "kid": kid,
                "coverage": coverage,
                "diversity": div,
                "diversity_min": div,
                "near_copy": 0.0,
            }

        mon.measure = measure  # type: ignore[method-assign]
        mon.plot = lambda path: None  # type: ignore[method-assign]
        log: list[str] = []
        for step in range(100, 100 * (len(kids) + 1), 100):
            mon(lambda z, y: z, step, log.append)
        return [line for line in log if "diversity fell" in line]

    assert run([4.7e3, 2.9e3, 2.5e3, 1.9e3], [1.4, 1.1, 0.92, 0.85]) == []  # the MSTAR run's first checks
    # The 64 px SAR run at commit c5acc56 was warned at step 500: from 1.40 (step 200, best KID) to 0.92.
    assert run([15466, 1092, 2939, 1783, 2342], [1.65, 1.40, 1.16, 1.0, 0.92]) == []
    # Diversity above the data's own is noise's: a fall from 1.4 counts from 1.0, the data's (a run with quality:
    # its KID fell 8x with a coverage of 0.3 beside it).
    assert run([400, 60, 50, 40, 45], [1.4, 1.4, 1.4, 0.92, 0.9], 0.3) == []
    assert len(run([400, 60, 50, 40, 45], [1.4, 1.4, 1.4, 0.65, 0.6], 0.3)) == 1
    # quality at step 300, diversity falls
    warned = run([400, 60, 50, 40, 45], [1.2, 1.0, 0.95, 0.6, 0.5], 0.3)
    assert len(warned) == 1 and "step 400" in warned[0] and "(0.95 at step 300" in warned[0]


def test_a_warm_up_check_is_never_the_best_state(tmp_path, tiny_config, tiny_images) -> None:
    """The 64 px SAR run with a strided critic stem (session 11): KID 875 at step 200 (its second check) stayed
    the best, and the ordinary rise to 2,629 and 2,947 at steps 1,200-1,300 was judged a collapse from it and
    rolled back to that step-200 generator. From the third check on, the best is 1,028 (step 400): no verdict,
    and best.pt is never a warm-up state."""
    kids = [12467, 875, 1705, 1028, 1114, 1271, 1691, 1291, 1490, 1819, 2484, 2629, 2947]
    covs = [0.017, 0.045, 0.015, 0.075, 0.098, 0.061, 0.052, 0.056, 0.063, 0.049, 0.045, 0.062, 0.042]
    mon = _monitor(tmp_path, tiny_config, tiny_images, list(zip(kids, covs)))
    checks = [mon(lambda z, y: z, step, lambda s: None) for step in range(100, 1400, 100)]
    # Its coverage never passed 0.1: it never reached quality (since session 15), so it has no best state at all.
    assert [c.collapse for c in checks] == [None] * 13 and all(c.best is None for c in checks)
    # With a coverage of 0.3 beside its KID fall, quality from the third check (1,705 <= 12,467 / 4) on.
    mon = _monitor(tmp_path, tiny_config, tiny_images, [(k, 0.3) for k in kids])
    checks = [mon(lambda z, y: z, step, lambda s: None) for step in range(100, 1400, 100)]
    assert [c.collapse for c in checks] == [None] * 13
    best_steps = [c.best["step"] for c in checks if c.best is not None]
    assert best_steps == [300, 400] and mon.best == 1028
    # The same rise from a best reached after the warm-up is still a collapse (coverage lost beside it).
    covs = [0.3] * 5 + [0.2, 0.2]
    mon = _monitor(
        tmp_path, tiny_config, tiny_images, list(zip([12467, 2000, 1705, 875, 1000, 2629, 2947], covs))
    )
    verdicts = [mon(lambda z, y: z, step, lambda s: None).collapse for step in range(100, 800, 100)]
    assert verdicts[:6] == [None] * 6 and "best 875 (step 400)" in verdicts[6]


def test_a_best_state_kept_before_quality_is_moved_aside_on_resume(
    tmp_path, tiny_config, tiny_images
) -> None:
    """A run resumed from the rule before session 15 may hold a best.pt of blobs (the 27-chip run's step 600);
    the monitor moves it aside (kept) unless it is a check since the run reached quality."""
    import torch

    from vaemsgan.checkpoint import save_best

    def resumed(checks: list[tuple[float, float]], best_step: int) -> tuple[Any, list[str]]:
        mon = _monitor(tmp_path, tiny_config, tiny_images, [])
        save_best(
            tmp_path, {"step": best_step, "monitor": {"kid": 4.79e4, "step": best_step, "space": mon.space}}
        )
        mon.best = mon._previous_best()
        mon.history = [{"step": 100 * (i + 1), "kid": k, "coverage": c} for i, (k, c) in enumerate(checks)]
        log: list[str] = []
        mon._drop_best_before_quality(log.append)
        return mon, log

    mon, log = resumed(SMALL_SET_RUN[:8], 600)  # never reached quality
    assert not (tmp_path / "best.pt").exists() and mon.best is None
    moved = torch.load(tmp_path / "best-before-quality.pt", weights_only=True)
    assert moved["step"] == 600 and len(log) == 1 and "step 600" in log[0]
    (tmp_path / "best-before-quality.pt").unlink()
    # Quality at step 500 (coverage 0.5): a best.pt of step 600 is a check since quality and stays.
    checks = [(k, 0.5 if i >= 4 else c) for i, (k, c) in enumerate(SMALL_SET_RUN[:8])]
    mon, log = resumed(checks, 600)
    assert (tmp_path / "best.pt").is_file() and mon.best == 4.79e4 and log == []
    # ... one of step 400, before it, does not.
    mon, log = resumed(checks, 400)
    assert not (tmp_path / "best.pt").exists() and (tmp_path / "best-before-quality.pt").is_file()
