"""One row of the CIFAR-10 judge screen (issue 25, docs/RESULTS.md "CIFAR-10"): train a named classifier preset
(evaluation/classifier.py), with changes, on all 50,000 colour training images at 32 px and print its accuracy
on the 10,000 test images as one JSON line (one thread; CPU seconds counted).

    python scripts/cifar_judge_screen.py --preset small --steps 600
    python scripts/cifar_judge_screen.py --preset small --steps 1500 --set width=32 max_width=128 crop_pad=4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaemsgan.data import load_images  # noqa: E402
from vaemsgan.evaluation.classifier import accuracy, classifier_preset, train_classifier  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="ClassifierConfig changes")
    p.add_argument("--policy", default="standard", choices=["standard", "classical", "none"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if not (Path(a.data) / "train").is_dir():
        raise SystemExit(f"{a.data}: no CIFAR-10 there (train/ and test/ class folders); give --data")
    torch.set_num_threads(1)

    def parse(field: str, text: str) -> object:
        kind = type(getattr(classifier_preset(a.preset), field))
        return text.lower() in ("1", "true", "yes") if kind is bool else kind(text)

    changes = {k: parse(k, v) for k, v in (s.split("=", 1) for s in a.set)}
    cfg = replace(classifier_preset(a.preset, steps=a.steps), **changes).validate()
    train = load_images(a.data, split="train", resolution=32, channels=3)
    test = load_images(a.data, split="test", resolution=32, channels=3)
    t0 = time.process_time()
    model = train_classifier(train.images, train.labels, 10, cfg, seed=a.seed, augment=a.policy)
    row = {**vars(a), "config": cfg.to_dict(), "test_acc": accuracy(model, test.images, test.labels)}
    print(json.dumps({**row, "cpu_s": time.process_time() - t0}), flush=True)


if __name__ == "__main__":
    main()
