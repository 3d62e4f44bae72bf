"""Training throughput: the full local pipeline against bare forward_backward on the very same batches.

    python -m benchmarks.train_throughput [--train MANIFEST] [--network tiny-cnn] [--image-shape 256] [--batch-size 32]

(a) pipeline: what ``cloud-training train`` does per batch: background decode/augment, forward_backward, update,
    loss bookkeeping (outputs copied to numpy);
(b) bare: the same batches made beforehand and held in memory, then only forward_backward + update (+ waitall).
Both run in this process on the same bound module, alternately, after a warm-up; the ratio a/b is printed.
Without --train, a synthetic dataset is written to a temporary folder first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import mxnet as mx

from cloud_training.training.augmentation import AugmentationConfig
from cloud_training.training.data import BatchLoader, load_samples
from cloud_training.training.hyperparameters import parse
from cloud_training.training.local import LocalTrainer, TrainOptions, TrainState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", help="a training manifest (default: a synthetic one)")
    parser.add_argument("--network", default="tiny-cnn")
    parser.add_argument("--image-shape", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of (a) and (b)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.train
        if manifest is None:
            from tests.support.datasets import write_boxes_dataset

            manifest = str(write_boxes_dataset(Path(tmp) / "data", 96, seed=3, size=(640, 480)))
        hp = parse({"base_network": args.network, "num_classes": "2", "num_training_samples": "1",
                    "image_shape": str(args.image_shape), "mini_batch_size": str(args.batch_size),
                    "use_pretrained_model": "0", "learning_rate": "0.01"})
        options = TrainOptions(train=[manifest], validation=[manifest], out_dir=Path(tmp) / "run")
        trainer = LocalTrainer(hp, options)
        samples = load_samples([manifest], hp.num_classes, hp.max_objects, 2 * hp.image_shape)
        needed = args.batches * args.batch_size
        samples = (samples * (needed // len(samples) + 1))[:needed]  # one "epoch" = one timed round
        loader = BatchLoader(samples, hp.mini_batch_size, hp.image_shape, hp.max_objects, AugmentationConfig(), seed=0)
        module = trainer.build_module(loader.batches_per_epoch(), TrainState())

        def bare(batches: list[mx.io.DataBatch]) -> float:
            started = time.perf_counter()
            for batch in batches:
                module.forward_backward(batch)
                module.update()
            mx.nd.waitall()
            return len(batches) * args.batch_size / (time.perf_counter() - started)

        def pipeline(epoch: int) -> float:
            started = time.perf_counter()
            trainer.train_epoch(module, loader, epoch)
            mx.nd.waitall()
            return len(samples) / (time.perf_counter() - started)

        pipeline(0)  # warm-up: operator selection, allocations, thread start-up
        pipeline_rates, bare_rates = [], []
        for round_index in range(1, args.rounds + 1):
            same = [mx.io.DataBatch(data=[mx.nd.array(d)], label=[mx.nd.array(lab)])
                    for d, lab in loader.epoch(round_index)]
            pipeline_rates.append(pipeline(round_index))  # the same epoch index: the very same batches
            bare_rates.append(bare(same))
        a, b = statistics.median(pipeline_rates), statistics.median(bare_rates)
        print(f"network {hp.base_network}/{hp.image_shape}, batch {hp.mini_batch_size}, {args.batches} batches x "
              f"{args.rounds} rounds, {mx.context.current_context()}")
        print(f"(a) full pipeline      {a:8.1f} images/s   rounds: {', '.join(f'{r:.1f}' for r in pipeline_rates)}")
        print(f"(b) bare fwd/bwd       {b:8.1f} images/s   rounds: {', '.join(f'{r:.1f}' for r in bare_rates)}")
        print(f"ratio a/b              {a / b:8.3f}")


if __name__ == "__main__":
    main()
