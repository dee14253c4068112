"""The PyTorch peer of bench/conv_line.lua: the same small CNN training step (forward, cross-entropy,
backward, SGD lr 0.01), batch 64 of 32x32x3 random images, 10 classes; conv 3->32->64->64 (3x3, padding 1,
ReLU), 2x2 max-pool after the first two, then a linear layer to 10. Prints one JSON line: median, min and
max ms per step over --steps after --warmup.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_cnn.py --threads 1 --steps 20
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--batch", type=int, default=64)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
    nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(args.batch, 3, 32, 32)
y = torch.randint(0, 10, (args.batch,))

times = []
loss = None
for step in range(args.warmup + args.steps):
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    elapsed = (time.perf_counter() - start) * 1000
    if step >= args.warmup:
        times.append(elapsed)
print(json.dumps({"system": "pytorch " + torch.__version__, "threads": torch.get_num_threads(),
                  "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
                  "steps": args.steps, "loss": loss.item()}))
