"""The MXNet backend: the deploy graph (softmax + MultiBoxDetection inside), the cloud side's reference.

MXNet is not part of the device install (``pip install ".[mxnet]"`` adds it): it cannot install on Python 3.12+
and its aarch64 wheel needs Arm Performance Libraries no OS ships. It stays the reference the ONNX backend is
proven equal to, and what ``cloud-training`` trains and converts with.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge_runtime.detectors.base import Detector
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo

log = logging.getLogger(__name__)


class MXNetDetector(Detector):
    """An SSD deploy graph bound ``workers`` times for a batch of one, warmed up before the first frame.

    Each binding (an MXNet executor) has its own input and intermediate arrays but all share one copy of the
    weights, so a second worker costs activations, not another 110 MB of resnet-50 weights. :meth:`detect` is
    thread-safe: each call borrows a free executor, so up to ``workers`` pipeline threads infer at once.
    """

    backend = "mxnet"

    def __init__(
        self,
        info: ModelInfo,
        score_threshold: float = 0.5,
        class_thresholds: Mapping[str, float] | None = None,
        top_k: int = 20,
        context: str = "cpu",
        gpu_id: int = 0,
        warmup_runs: int = 1,
        workers: int = 1,
        threads: int = 0,
    ) -> None:
        super().__init__(info, score_threshold, class_thresholds, top_k, concurrency=workers)
        if not info.has_mxnet:
            raise ModelError(f"{info.folder}: the mxnet backend needs {info.symbol_path.name} and"
                             f" {info.params_path.name}, which this model folder does not list")  # fmt: skip
        from edge_runtime.detectors.mxnet_io import configure_threads

        self.threads_env = configure_threads(threads, workers)  # before MXNet loads: it reads them only then
        import mxnet as mx

        from edge_runtime.detectors.mxnet_io import load_params, load_symbol

        symbol = load_symbol(info.symbol_path)
        arg_params, aux_params = load_params(info.params_path)
        ctx = mx.gpu(gpu_id) if context == "gpu" else mx.cpu()
        shape = (1, 3, info.image_size, info.image_size)
        weights, aux = _weights_for(symbol, arg_params, aux_params, ctx, info)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(workers):
            self._free.put(_bind(symbol, weights, aux, ctx, shape, info))
        log.debug("bound %s %d time(s): input %s; %s", info.name, workers, shape, self.threads_env)
        for _ in range(warmup_runs * workers):  # one executor after another: each allocates on its first forward
            self.forward(np.zeros(shape, dtype=np.float32))

    def describe(self) -> dict[str, str]:
        threads = self.threads_env.get("OMP_NUM_THREADS", "default")
        return {"backend": self.backend, "workers": str(self.concurrency), "threads": threads}

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The graph's (anchors, 6) detection rows for one (1, 3, S, S) batch, on whichever executor is free."""
        executor = self._free.get()  # never waits long: the pipeline runs at most ``workers`` threads
        try:
            executor.forward(is_train=False, data=batch)  # copies the batch into the executor's input
            output: np.ndarray = executor.outputs[0].asnumpy()
        finally:
            self._free.put(executor)
        return output[0]

    def rows(self, outputs: Any, min_score: Optional[float] = None) -> np.ndarray:
        rows: np.ndarray = outputs  # MultiBoxDetection ran inside the graph
        return rows


def _weights_for(
    symbol: Any, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any], ctx: Any, info: ModelInfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph's weights and auxiliary states on ``ctx``, by name; ModelError naming what the file lacks."""
    needed = [name for name in symbol.list_arguments() if name != "data"]
    missing = [name for name in needed if name not in arg_params]
    missing += [name for name in symbol.list_auxiliary_states() if name not in aux_params]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(f"{info.params_path}: weights do not fit the graph (missing {shown})")
    weights = {name: arg_params[name].as_in_context(ctx) for name in needed}
    aux = {name: aux_params[name].as_in_context(ctx) for name in symbol.list_auxiliary_states()}
    return weights, aux


def _bind(
    symbol: Any, weights: dict[str, Any], aux: dict[str, Any], ctx: Any, shape: tuple[int, ...], info: ModelInfo
) -> Any:
    """One inference executor over the shared ``weights``, with its own input array of ``shape``."""
    import mxnet as mx

    from edge_runtime.detectors.mxnet_io import mxnet_reason, native_stderr_to_log

    try:
        with native_stderr_to_log():
            return symbol.bind(
                ctx, args={**weights, "data": mx.nd.zeros(shape, ctx=ctx)}, aux_states=aux, grad_req="null"
            )
    except Exception as error:  # MXNetError from a shape mismatch between the graph and the weights
        raise ModelError(f"{info.params_path}: weights do not fit the graph ({mxnet_reason(error)})") from None


def create(info: ModelInfo, config: Any, precision: str, state_dir: Optional[Path] = None) -> MXNetDetector:
    """The registry's factory (:mod:`edge_runtime.detectors.registry`); MXNet runs fp32 only (the registry says so)."""
    from edge_runtime.detectors import engine_settings

    return MXNetDetector(info, **engine_settings(config))
