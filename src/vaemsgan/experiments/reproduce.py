"""`vaemsgan reproduce EXPERIMENT`: the top of the experiments layer, which names every experiment's driver.

Layers point one way: `registry` (what runs) <- `context` (options, the judge, the shared real data) <- `runner`
(shared helpers: plans, training, parts)
<- the drivers (`curves`, `gain_study`, `mstar`), each using the runner's helpers and never imported back
<- this module, which picks the driver by the experiment's `parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vaemsgan.errors import ConfigError, OutputExistsError
from vaemsgan.experiments import curves, gain_study, mstar
from vaemsgan.experiments.context import Context, ReproduceOptions
from vaemsgan.experiments.registry import expand
from vaemsgan.experiments.runner import (
    _logger,
    json_safe,
    machine_info,
    plan_runs,
    result_stem,
    run_one,
)
from vaemsgan.experiments.tables import write_experiment, write_summary


def reproduce(
    experiment: str, out: str | Path, opts: ReproduceOptions, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run `experiment` (or a group: `table2`, `all`) into `out`; returns {experiment: table dict}."""
    import time

    opts.validate()
    exps = expand(experiment)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    log = log or _logger(True)  # progress lines go to stderr always; --no-progress only hides bars
    if opts.threads > 0:  # every part honours --threads, the judge and evaluations too (not only training)
        from vaemsgan.training.trainer import set_threads

        set_threads(opts.threads)
    ctx = Context(opts, log)
    # Plans first: a bad --set key fails now, not after an hour of training.
    plans: dict[str, Any] = {}
    if not opts.train:
        for exp in exps:
            mstar_gain = "mstar" in exp.parts and "gain" in (opts.parts or mstar.PARTS)
            if ("curve" not in exp.parts and "mstar" not in exp.parts) or mstar_gain:
                raise ConfigError(
                    f"--no-train: only learning curves evaluate without training ({exp.name}"
                    f"{' --parts gain' if mstar_gain else ''} trains its models); drop --no-train"
                )
    for exp in exps:
        if "gain" in exp.parts:  # one set of runs per real-set size (experiments/gain_study.py)
            plans[exp.name] = gain_study.plan_gain(exp, out, opts)
        elif "mstar" in exp.parts:
            plans[exp.name] = mstar.plan_mstar(exp, out, opts)
        else:
            plans[exp.name] = plan_runs(exp, out, opts)
    tables = {}
    for exp in exps:
        t0 = time.perf_counter()
        meta = {"command_options": json_safe(asdict(opts)), "machine": machine_info()}
        if "gain" in exp.parts:  # train per size, evaluate each run's augmentation gain, pool per size
            n_runs = sum(len(p) for p in plans[exp.name].values())
            log(f"experiment {exp.name}: {n_runs} run(s) in {len(plans[exp.name])} real-set size(s)")
            tables[exp.name] = gain_study.run_gain(exp, plans[exp.name], out, opts, meta, log)
            log(f"experiment {exp.name}: wrote {out / (result_stem(exp.name, tables[exp.name]) + '.md')}")
            continue
        if "mstar" in exp.parts:  # the judge, the curves and the gain study on SAR chips
            tables[exp.name] = mstar.run_mstar(exp, plans[exp.name], out, opts, meta, log)
            log(f"experiment {exp.name}: wrote {out / (exp.name + '.md')}")
            continue
        log(f"experiment {exp.name}: {len(plans[exp.name])} run(s)")
        if "curve" in exp.parts:  # one long run per model, evaluated at its snapshots
            tables[exp.name] = curves.run_curves(plans[exp.name], out, ctx, opts, meta, log, exp)
            log(f"experiment {exp.name}: wrote {out / (exp.name + '.md')}")
            continue
        results = [run_one(p, exp.parts, ctx, opts) for p in plans[exp.name]]
        meta["wall_s"] = time.perf_counter() - t0
        tables[exp.name] = write_experiment(exp, results, out, meta)
        log(f"experiment {exp.name}: wrote {out / (exp.name + '.md')}")
    if len(exps) > 1:
        write_summary(experiment, [e.name for e in exps], out)
    return tables
