"""What the gradient-flow recorder costs: a VGG38 training step with and without it.

    python benchmarks/bench_recorder.py [--steps 6] [--batch-size 100]

The recorder computes at the last step of every epoch only; this benchmark makes it record
at *every* step (``every="step"``), the worst case, and reports the extra time per step as a
percentage (issue 5's target: under 5% of the step time). Steps with and without the
recorder alternate, after a warm-up, and the medians are compared.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minideep as md  # noqa: E402
import minideep.nn.functional as F  # noqa: E402
from minideep import optim  # noqa: E402
from minideep.diagnostics import GradientFlowRecorder  # noqa: E402
from minideep.models.vgg import vgg38  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps of each kind")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()

    md.manual_seed(0)
    model = vgg38(num_classes=100)
    opt = optim.Adam(model.named_parameters())
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 100, args.batch_size)
    recorder = GradientFlowRecorder(every="step", interval=1, into_history=False)
    state = SimpleNamespace(model=model, epoch=0, step=0, global_step=0, steps_per_epoch=None, history=[])
    recorder.on_train_begin(state)

    def step(record: bool) -> float:
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        if record:
            recorder.on_step_end(state)
            state.global_step += 1
        opt.step()
        return time.perf_counter() - start

    step(False), step(True)  # warm-up
    plain, recorded = [], []
    for i in range(args.steps):
        for record in ((False, True) if i % 2 == 0 else (True, False)):
            (recorded if record else plain).append(step(record))
    base, with_recorder = statistics.median(plain), statistics.median(recorded)
    record_cost = []
    for _ in range(20):  # the recorder alone, on the gradients of the last step
        start = time.perf_counter()
        recorder.on_step_end(state)
        record_cost.append(time.perf_counter() - start)
    alone = statistics.median(record_cost)
    print(f"VGG38 step (batch {args.batch_size}): {base * 1e3:.0f} ms without the recorder, "
          f"{with_recorder * 1e3:.0f} ms recording every step")
    print(f"one record alone: {alone * 1e3:.2f} ms = {100 * alone / base:.3f}% of a step (target: under 5%)")


if __name__ == "__main__":
    main()
