"""Chapter 03's PyTorch twin: the same networks, weights, batches and optimizer, trained in PyTorch.

    python scripts/torch_twin_03.py --preset quick --seeds 0 1 2 --out docs/figures/03/torch_twin.json

For every variant and seed the chapter runs, this script builds the chapter's minideep
network with the chapter's seed, copies its initial weights into the PyTorch twin of
``tests/torch_vgg.py`` (written from the coursework framework's description, not from
minideep's code), and trains it on the chapter's own data loaders: the same images, in the
same order each epoch (the loaders are seeded per epoch), with Adam and the cosine schedule
of the preset, testing from the best-validation epoch as the chapter does. The chapter reads
the file this writes and prints its accuracies beside minideep's.

``tests/test_vgg_torch.py`` shows the two frameworks follow one trajectory in float64 (20
Adam steps, loss and parameters within 1e-6); here both train in float32, so after a few
hundred steps they are two runs of one experiment, to be compared within the seed spread.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "03_vgg38.py"


def load_chapter() -> ModuleType:
    """Chapter 03's script as a module (its presets, data and network builders)."""
    spec = importlib.util.spec_from_file_location("chapter_03", CHAPTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def twin_run(torch: Any, chapter: ModuleType, variant: str, seed: int, config: dict, data: Any) -> dict:
    """Train the PyTorch twin of ``variant`` as the chapter trains it; its test accuracy and history."""
    import minideep as md  # noqa: PLC0415
    from torch_vgg import build_torch_vgg  # noqa: PLC0415 - tests/torch_vgg.py

    md.manual_seed(seed)
    model = chapter.build(variant, len(data.train.classes))
    net = build_torch_vgg(model).float()  # minideep's initial weights, float32 as minideep trains
    config = chapter.settings(variant, config)  # the variant's batch size, lr and weight decay (its Table 1 row)
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config["epochs"], eta_min=config["eta_min"])
    train, val, test = data.loaders(config["batch_size"], seed)
    history, best, best_state = [], None, None
    for epoch in range(config["epochs"]):
        train.set_epoch(epoch)
        net.train()
        losses = []
        for x, y in train:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x.numpy())), torch.from_numpy(y.numpy()))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        record = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if val is not None:
            record.update(evaluate(torch, net, val))
            if best is None or record["val_acc"] > best:  # the chapter's rule: best validation accuracy
                best, best_state = record["val_acc"], {k: v.clone() for k, v in net.state_dict().items()}
        history.append(record)
    if best_state is not None:
        net.load_state_dict(best_state)
    metrics = evaluate(torch, net, test)
    return {"test_accuracy": metrics["val_acc"], "test_loss": metrics["val_loss"], "history": history, "settings": config,
            "parameters": int(sum(p.numel() for p in net.parameters()))}


def evaluate(torch: Any, net: Any, loader: Any) -> dict:
    """Means over batches of loss and accuracy, in eval mode (minideep's ``train.evaluate``)."""
    net.eval()
    losses, accs = [], []
    with torch.no_grad():
        for x, y in loader:
            logits = net(torch.from_numpy(x.numpy()))
            target = torch.from_numpy(y.numpy())
            losses.append(torch.nn.functional.cross_entropy(logits, target).item())
            accs.append((logits.argmax(1) == target).double().mean().item())
    return {"val_loss": float(np.mean(losses)), "val_acc": float(np.mean(accs))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="the chapter's preset (smoke, quick, paper)")
    parser.add_argument("--variants", nargs="+", default=None, help="default: the preset's variants")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset", default="auto")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (atomically)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    chapter = load_chapter()
    config = dict(chapter.PRESETS[args.preset])
    data_args = argparse.Namespace(dataset=args.dataset, preset=args.preset, data_dir=args.data_dir)
    data = chapter.load_data(data_args, config)
    variants = args.variants or list(getattr(chapter, "DEFAULT_VARIANTS", {}).get(args.preset, chapter.VARIANTS))
    runs: dict[str, dict[str, Any]] = {}
    for variant in variants:
        for seed in args.seeds:
            start = time.perf_counter()
            run = twin_run(torch, chapter, variant, seed, config, data)
            run["wall_s"] = time.perf_counter() - start
            runs.setdefault(variant, {})[str(seed)] = run
            print(f"  torch twin {variant} seed {seed}: test accuracy {run['test_accuracy']:.1%} ({run['wall_s']:.0f} s)",
                  flush=True)
    payload = {"preset": args.preset, "config": config, "seeds": args.seeds, "dataset": getattr(data, "description", None), "torch": torch.__version__, "threads": args.threads,
               "machine": {"platform": platform.platform(), "cores": os.cpu_count()}, "variants": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
