"""Issue 7 study: augmentation gain of several generated sets over the same real 100-per-class set.

Equivalent to one `vaemsgan evaluate --real fashion-mnist --real-per-class 100 --generated DIR
--augmentation-gain --seeds 3` per generated folder, but the real-only classifiers (identical in every such
run: same seeds, same data) are trained once and shared, which saves a third of the CPU time.

    .venv/bin/python benchmarks/scarce_study.py [--classifier-steps N] OUT.json NAME=DIR [NAME=DIR ...]

--classifier-steps: training steps of every classifier (default 300, the evaluation's), e.g. 600 to check
that the real + generated classifier, which sees each real image half as often, is not just under-trained.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch

from vaemsgan.data import load_images
from vaemsgan.evaluation.classifier import ClassifierConfig, predict, train_classifier
from vaemsgan.evaluation.crossval import _ci, _per_class_acc
from vaemsgan.evaluation.gain import augmentation_gain
from vaemsgan.evaluation.inputs import load_generated_dir, rename_to_real

SEEDS, PER_CLASS, CLF = 3, 100, ClassifierConfig()


def main(out: str, sets: list[str], clf: ClassifierConfig = CLF) -> None:
    torch.set_num_threads(1)
    real = load_images("fashion-mnist", per_class=PER_CLASS, seed=0)
    test = load_images("fashion-mnist", split="test")
    names = list(real.class_names)

    def fit_eval(images: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[float, list[float]]:
        pred = predict(train_classifier(images, labels, len(names), clf, seed=seed), test.images)
        return float((pred == test.labels).double().mean()), _per_class_acc(pred, test.labels, len(names))

    t0 = time.perf_counter()
    base = [fit_eval(real.images, real.labels, s) for s in range(SEEDS)]
    result: dict = {"real_only_s": time.perf_counter() - t0, "classifier_steps": clf.steps, "sets": {}}
    base_item = {
        "ratio": 0.0,
        "accuracy": _ci([a for a, _ in base]),
        "per_class_values": [p for _, p in base],
    }
    for spec in sets:
        name, folder = spec.split("=", 1)
        gen = load_generated_dir(folder, 32, 1)
        rename_to_real(gen, names)
        gen = gen.select_classes(names)
        t0 = time.perf_counter()
        runs = []
        for s in range(SEEDS):
            g = torch.Generator().manual_seed(10_007 * s + 17)
            idx = torch.cat(
                [
                    (gen.labels == c)
                    .nonzero()
                    .flatten()[torch.randperm(int((gen.labels == c).sum()), generator=g)[:PER_CLASS]]
                    for c in range(len(names))
                ]
            )
            runs.append(
                fit_eval(
                    torch.cat([real.images, gen.images[idx]]), torch.cat([real.labels, gen.labels[idx]]), s
                )
            )
        item = {"ratio": 1.0, "accuracy": _ci([a for a, _ in runs]), "per_class_values": [p for _, p in runs]}
        gain = augmentation_gain([base_item, item], names)
        gain["seconds"] = time.perf_counter() - t0
        result["sets"][name] = gain
        print(name, gain["verdict_lines"], flush=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    args = sys.argv[1:]
    config = CLF
    if args[:1] == ["--classifier-steps"]:
        config = dataclasses.replace(CLF, steps=int(args[1]))
        args = args[2:]
    main(args[0], args[1:], config)
