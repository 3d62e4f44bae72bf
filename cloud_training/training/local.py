"""Train the SSD with MXNet on this machine and write ``model.tar.gz`` exactly as SageMaker lays it out.

One epoch = every training image once, augmented online; after each epoch the validation images are run through the
training graph's ``det_out`` and scored with VOC07 mAP, the figure SageMaker reports as ``validation:mAP``. Every epoch
leaves a checkpoint (weights, optimizer state, history) so ``--resume`` continues an interrupted run where it stopped.
The artifact holds the weights of the epoch with the best validation mAP.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import shutil
import tarfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import mxnet as mx
import numpy as np

from cloud_training.artifact import HYPERPARAMS_FILE, PARAMS_FILE, SYMBOL_FILE
from cloud_training.errors import TrainingError
from cloud_training.evaluation.loop import validation_rows
from cloud_training.evaluation.voc import VOC07MApMetric
from cloud_training.lineage import manifests_identity, training_lineage, write_lineage
from cloud_training.progress import progress
from cloud_training.ssd import get_symbol_train
from cloud_training.training.augmentation import AugmentationConfig
from cloud_training.training.data import BatchLoader, load_samples, load_validation, validation_batches
from cloud_training.training.hyperparameters import Hyperparameters
from cloud_training.training.metrics_log import (
    EpochMetrics,
    MultiBoxLoss,
    log_progress,
    log_train,
    log_validation,
    write_csv,
    write_plot,
)
from edge_runtime.detectors.mxnet_io import native_stderr_to_log
from edge_runtime.model import sha256_of
from edge_runtime.model_format import MEAN_RGB

log = logging.getLogger(__name__)
PREFIX = "model_algo_1"
STATE_FILE = "state.json"
# Hyperparameters that may change between an interrupted run and its --resume; the rest define the model.
RESUMABLE = {"epochs", "early_stopping", "early_stopping_min_epochs", "early_stopping_patience",
             "early_stopping_tolerance"}


@dataclass(frozen=True)
class TrainOptions:
    train: list[str]
    validation: list[str]
    out_dir: Path
    resume: bool = False
    pretrained_params: Optional[Path] = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    seed: int = 0
    label_attribute: Optional[str] = None
    cache_side: Optional[int] = None  # longest image side kept in memory; default 2 x image_shape


@dataclass
class TrainState:
    """What a checkpoint remembers besides the weights."""

    epochs_done: int = 0
    best_epoch: int = -1
    best_map: float = -1.0
    history: list[EpochMetrics] = field(default_factory=list)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    # SHA-256 of each validation manifest: the best epoch is chosen across epochs' mAPs, which only compare on one set
    validation_sha256: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        data = json.loads(text)
        data["history"] = [EpochMetrics(**row) for row in data["history"]]
        return cls(**data)


def context() -> mx.Context:
    """The first GPU when MXNet was built with one and sees one, else the CPU."""
    try:
        return mx.gpu(0) if mx.context.num_gpus() > 0 else mx.cpu()
    except mx.base.MXNetError:
        return mx.cpu()


def _optimizer(hp: Hyperparameters, batches_per_epoch: int, begin_update: int) -> mx.optimizer.Optimizer:
    steps = [step * batches_per_epoch for step in hp.lr_scheduler_step]
    scheduler = mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=hp.lr_scheduler_factor) if steps else None
    params: dict[str, Any] = {"learning_rate": hp.learning_rate, "wd": hp.weight_decay, "lr_scheduler": scheduler,
                              "rescale_grad": 1.0, "begin_num_update": begin_update}
    if scheduler is not None:
        scheduler.base_lr = hp.learning_rate
    if hp.optimizer == "sgd":
        params["momentum"] = hp.momentum
    return mx.optimizer.create(hp.optimizer, **params)


def _load_params(path: Path) -> tuple[dict[str, mx.nd.NDArray], dict[str, mx.nd.NDArray]]:
    try:
        with native_stderr_to_log(log):
            loaded = mx.nd.load(str(path))
    except mx.base.MXNetError:
        raise TrainingError(f"{path}: not a readable MXNet params file") from None
    arg = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
    return arg, aux


class LocalTrainer:
    def __init__(self, hp: Hyperparameters, options: TrainOptions) -> None:
        if hp.use_pretrained_model == 1 and options.pretrained_params is None and not options.resume:
            raise TrainingError(
                "use_pretrained_model=1 needs --pretrained-params FILE (nothing is downloaded here);"
                " set use_pretrained_model=0 to train from scratch"
            )
        self.hp = hp
        self.options = options
        self.checkpoints = options.out_dir / "checkpoints"
        self.symbol = get_symbol_train(hp.base_network, hp.num_classes, hp.image_shape, nms_thresh=hp.nms_threshold,
                                       nms_topk=hp.nms_topk, overlap_threshold=hp.overlap_threshold)

    # -- checkpoints -------------------------------------------------------------------------------------------
    def _load_state(self) -> TrainState:
        path = self.checkpoints / STATE_FILE
        if not path.exists():
            raise TrainingError(f"--resume: no checkpoint in {self.checkpoints}")
        state = TrainState.from_json(path.read_text())
        now = self.hp.to_strings()
        changed = [k for k in now if k not in RESUMABLE and state.hyperparameters.get(k) != now[k]]
        if changed:
            key = changed[0]
            raise TrainingError(
                f"--resume: the checkpoint was trained with {key}={state.hyperparameters.get(key)!r}, not {now[key]!r}"
            )
        validation = self._validation_sha256()
        if state.validation_sha256 and state.validation_sha256 != validation:
            raise TrainingError(
                f"--resume: the checkpoint was validated on other --validation manifests (SHA-256"
                f" {', '.join(h[:12] for h in state.validation_sha256)}), and mAPs of two sets do not compare;"
                " give the same --validation, or --force to start over"
            )
        return state

    def _validation_sha256(self) -> list[str]:
        return [identity["sha256"] for identity in manifests_identity(self.options.validation)]

    def _save_checkpoint(self, module: mx.mod.Module, state: TrainState, improved: bool) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        epoch = state.epochs_done
        arg, aux = module.get_params()
        self.symbol.save(str(self.checkpoints / f"{PREFIX}-symbol.json"))
        mx.nd.save(str(self.checkpoints / f"{PREFIX}-{epoch:04d}.params"),
                   {**{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}})
        module.save_optimizer_states(str(self.checkpoints / f"{PREFIX}-{epoch:04d}.states"))
        if improved:
            shutil.copyfile(self.checkpoints / f"{PREFIX}-{epoch:04d}.params",
                            self.checkpoints / f"{PREFIX}-best.params")
        tmp = self.checkpoints / (STATE_FILE + ".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.checkpoints / STATE_FILE)  # the state names the epoch only once its files are complete
        for old in self.checkpoints.glob(f"{PREFIX}-*.*"):
            match = re.fullmatch(rf"{PREFIX}-(\d{{4}})\.(params|states)", old.name)
            if match and int(match.group(1)) < epoch - 1:
                old.unlink()

    # -- the run -----------------------------------------------------------------------------------------------
    def run(self) -> TrainState:
        hp, options = self.hp, self.options
        state = self._load_state() if options.resume else TrainState(hyperparameters=hp.to_strings())
        state.hyperparameters = hp.to_strings()
        state.validation_sha256 = self._validation_sha256()
        if state.epochs_done >= hp.epochs:
            log.info("the checkpoint already has %d of %d epochs", state.epochs_done, hp.epochs)
            return self._finish(state)
        mx.random.seed(options.seed)  # weight initialisation; the loader seeds its own generator
        cache_side = options.cache_side or 2 * hp.image_shape
        train_samples = load_samples(options.train, hp.num_classes, hp.max_objects, cache_side, options.label_attribute,
                                     "decoding train")
        val_samples = load_validation(options.validation, hp.num_classes, hp.max_objects, hp.image_shape,
                                      options.label_attribute)
        if len(train_samples) != hp.num_training_samples:
            log.warning("num_training_samples is %d but the training manifests hold %d images",
                        hp.num_training_samples, len(train_samples))
        loader = BatchLoader(train_samples, hp.mini_batch_size, hp.image_shape, hp.max_objects, options.augmentation,
                             options.seed)
        val_batches = validation_batches(val_samples, hp.mini_batch_size, hp.image_shape, hp.max_objects, MEAN_RGB)
        module = self.build_module(loader.batches_per_epoch(), state)
        log.info("training %s/%d on %d images (%d validation), %d batches of %d per epoch, on %s",
                 hp.base_network, hp.image_shape, len(train_samples), len(val_samples), loader.batches_per_epoch(),
                 hp.mini_batch_size, module._context[0])
        stale = 0
        for epoch in range(state.epochs_done, hp.epochs):
            started = time.monotonic()
            cross_entropy, smooth_l1 = self.train_epoch(module, loader, epoch)
            mean_ap = self.validate(module, val_batches)
            lr = float(module._optimizer.learning_rate if module._optimizer.lr_scheduler is None
                       else module._optimizer.lr_scheduler(module._optimizer.num_update))
            log_train(epoch, loader.batches_per_epoch() - 1, cross_entropy, smooth_l1)
            log_validation(epoch, mean_ap)
            log_progress(epoch, hp.epochs)
            state.history.append(EpochMetrics(epoch, cross_entropy, smooth_l1, mean_ap, lr,
                                              round(time.monotonic() - started, 2)))
            improved = self._improved(mean_ap, state.best_map)
            if mean_ap > state.best_map:
                state.best_map, state.best_epoch = mean_ap, epoch
            stale = 0 if improved else stale + 1
            state.epochs_done = epoch + 1
            self._save_checkpoint(module, state, improved=state.best_epoch == epoch)
            write_csv(options.out_dir / "metrics.csv", state.history)
            if hp.early_stopping and epoch + 1 >= hp.early_stopping_min_epochs and stale >= hp.early_stopping_patience:
                log.info("early stopping: validation mAP has not improved for %d epochs", stale)
                break
        return self._finish(state)

    def _improved(self, mean_ap: float, best: float) -> bool:
        """SageMaker's rule: an improvement is a relative gain over the best mAP above early_stopping_tolerance."""
        if best <= 0:
            return mean_ap > best
        return (mean_ap - best) / best > self.hp.early_stopping_tolerance

    def build_module(self, batches_per_epoch: int, state: TrainState) -> mx.mod.Module:
        hp = self.hp
        fixed = []
        if hp.freeze_layer_pattern:
            pattern = re.compile(hp.freeze_layer_pattern)
            fixed = [name for name in self.symbol.list_arguments() if pattern.match(name)]
        module = mx.mod.Module(self.symbol, data_names=["data"], label_names=["label"], context=context(),
                               fixed_param_names=fixed)
        with native_stderr_to_log(log):
            module.bind(data_shapes=[("data", (hp.mini_batch_size, 3, hp.image_shape, hp.image_shape))],
                        label_shapes=[("label", (hp.mini_batch_size, hp.max_objects, 5))], for_training=True)
        arg_params: Optional[dict[str, mx.nd.NDArray]] = None
        aux_params: Optional[dict[str, mx.nd.NDArray]] = None
        if state.epochs_done > 0:
            arg_params, aux_params = _load_params(self.checkpoints / f"{PREFIX}-{state.epochs_done:04d}.params")
        elif self.options.pretrained_params is not None:
            arg_params, aux_params = _load_params(self.options.pretrained_params)
            shapes = dict(zip(self.symbol.list_arguments(), module._exec_group.execs[0].arg_arrays))
            arg_params = {k: v for k, v in arg_params.items() if k in shapes and shapes[k].shape == v.shape}
            log.info("starting from %d pretrained arrays in %s", len(arg_params), self.options.pretrained_params)
        module.init_params(initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2),
                           arg_params=arg_params, aux_params=aux_params, allow_missing=True)
        with warnings.catch_warnings():
            # rescale_grad stays 1 on purpose: the losses are already normalised by the matched anchors (mxnet-ssd)
            warnings.filterwarnings("ignore", message="Optimizer created manually outside Module")
            module.init_optimizer(kvstore=None,
                                  optimizer=_optimizer(hp, batches_per_epoch, state.epochs_done * batches_per_epoch))
        if state.epochs_done > 0:
            module.load_optimizer_states(str(self.checkpoints / f"{PREFIX}-{state.epochs_done:04d}.states"))
            log.info("resuming after epoch %d (best validation mAP %.4f at epoch %d)", state.epochs_done - 1,
                     state.best_map, state.best_epoch)
        return module

    def train_epoch(self, module: mx.mod.Module, loader: BatchLoader, epoch: int) -> tuple[float, float]:
        loss = MultiBoxLoss()
        # epochs are numbered from 0 everywhere (SageMaker's metric lines, inspect, convert, the report); the count too
        desc = f"epoch {epoch} ({epoch + 1} of {self.hp.epochs})"
        batches = progress(loader.epoch(epoch), desc, total=loader.batches_per_epoch(),
                           unit="batch")
        for data, labels in batches:
            module.forward_backward(mx.io.DataBatch(data=[mx.nd.array(data)], label=[mx.nd.array(labels)]))
            module.update()
            cls_prob, loc_loss, cls_label, _ = module.get_outputs()
            loss.update(cls_prob.asnumpy(), loc_loss.asnumpy(), cls_label.asnumpy())
        return loss.values()

    def validate(
        self, module: mx.mod.Module, batches: list[tuple[np.ndarray, np.ndarray, list[np.ndarray], int]]
    ) -> float:
        """VOC07 mAP of the training graph's det_out on the validation images (0.0 if nothing was scored).

        The images were prepared as the device's detector prepares them and the rows go through ``evaluate``'s own
        :func:`~cloud_training.evaluation.loop.validation_rows`, so this is the number ``evaluate`` gives the
        converted model on the same manifest (up to MXNet-vs-ONNX Runtime float differences; see the tests).
        """
        metric = VOC07MApMetric()
        for data, labels, truths, real in batches:
            module.forward(mx.io.DataBatch(data=[mx.nd.array(data)], label=[mx.nd.array(labels)]), is_train=False)
            detections = module.get_outputs()[3].asnumpy()
            for index in range(real):
                metric.update(validation_rows(detections[index]), truths[index])
        result = metric.result(self.hp.num_classes)
        return float(result.mean_ap or 0.0)

    # -- the artifact ------------------------------------------------------------------------------------------
    def _finish(self, state: TrainState) -> TrainState:
        out_dir = self.options.out_dir
        best = self.checkpoints / f"{PREFIX}-best.params"
        if not best.exists():
            raise TrainingError(f"{self.checkpoints}: no trained epoch to package")
        write_artifact(out_dir / "model.tar.gz", self.symbol.tojson(), best.read_bytes(), self.hp.to_strings())
        write_csv(out_dir / "metrics.csv", state.history)
        write_plot(out_dir / "metrics.png", state.history)
        write_lineage(out_dir, training_lineage(
            backend="local", job={"run_folder": str(out_dir.resolve()), "seed": self.options.seed},
            train=self.options.train, validation=self.options.validation, hyperparameters=self.hp.to_strings(),
            artifact_sha256=sha256_of(out_dir / "model.tar.gz"), best_epoch=state.best_epoch,
            best_validation_map=state.best_map, epochs_done=state.epochs_done,
        ))
        log.info("wrote %s: epoch %d, validation mAP %.4f", out_dir / "model.tar.gz", state.best_epoch, state.best_map)
        return state


def write_artifact(path: Path, symbol_json: str, params: bytes, hyperparameters: dict[str, str]) -> None:
    """model.tar.gz in SageMaker's layout: the three files at the top of a gzipped tar, written whole."""
    members = {SYMBOL_FILE: symbol_json.encode(), PARAMS_FILE: params,
               HYPERPARAMS_FILE: json.dumps(hyperparameters).encode()}
    tmp = path.with_name(path.name + ".partial")
    with tarfile.open(tmp, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    tmp.replace(path)
