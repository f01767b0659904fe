"""Running the trained networks fast on a CPU: bf16 where the CPU computes it natively, else ONNX Runtime, else
TorchScript.

The weights stay PyTorch safetensors (the training format, checked against their cards). On a CPU with native
bf16 (AVX512-BF16 or AMX, as oneDNN reports it) the V-Nets run as plain modules under bf16 autocast: on this
project's 2-core EPYC twice as fast as ONNX Runtime in fp32 (disc network on a localizer's spine box 0.31 ->
0.16 s, localization network 0.25 -> 0.14 s), with probabilities within a few hundredths of fp32 (tested) and the
same held-out accuracy (README, Latency). Callers that need exact fp32 (the small level classifier, whose
log-probabilities are summed by the sequence matching) ask for `bf16=False`. Otherwise the network is exported in
memory to ONNX and handed to ONNX Runtime, whose CPU kernels run these V-Nets about twice as fast as torch in
fp32; if ONNX Runtime or the exporter is missing or fails, the network is traced and frozen by TorchScript in the
channels-last layout, and if that fails too the plain module runs. The fp32 paths give the plain module's output
(tested to 1e-3).

`SPINE_LOCALIZER_RUNTIME` forces a path: `onnxruntime` (fp32 everywhere) or `torch` (TorchScript, fp32).
Given the weights' sha256 (`weights_sha256`), an exported graph is kept on disk and reused by later processes
(networks/onnx_cache.py): the export costs more than a plan.
"""

from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager

import numpy as np
import torch

RUNTIME_ENV = "SPINE_LOCALIZER_RUNTIME"


@contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to `n` for a block, and given back after it: inside Slicer the process's
    setting belongs to Slicer and to other modules, not to us."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class InferenceNet:
    """A network prepared for CPU inference, called like the module (a float32 tensor N x C x D x H x W in, the
    logits out). `example_shape` is the input the export or trace is recorded on (by default a small cube the
    V-Net can take); other spatial and batch sizes run through the same graph. `backend` says which path runs.
    """

    def __init__(
        self,
        net,
        example_shape: tuple[int, ...] | None = None,
        threads: int = 2,
        bf16: bool = True,
        weights_sha256: str | None = None,
    ):
        self.multiple = getattr(net, "multiple", 1)
        example = torch.zeros(example_shape or (1, 1) + (2 * self.multiple,) * 3)
        self.backend = "torch"
        self._call = net
        forced = os.environ.get(RUNTIME_ENV, "").lower()
        if bf16 and not forced and native_bf16():
            self.backend, self._call = "bf16", _bf16_caller(net)
            return
        if forced != "torch":
            session = _onnx_session(net, example, threads, weights_sha256)
            if session is not None:
                self.backend, self._call = "onnxruntime", _onnx_caller(session)
                return
        traced = _torchscript(net, example)
        if traced is not None:
            self.backend, self._call = "torchscript", traced

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._call(x)


def native_bf16() -> bool:
    """True where oneDNN computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _bf16_caller(net):
    net.eval()

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x).float()

    return call


def _onnx_session(net, example: torch.Tensor, threads: int, weights_sha256: str | None = None):
    """An ONNX Runtime session of `net`: from the graph cache when it holds this network's graph, else exported
    in memory (and stored when `weights_sha256` names the weights). None where ONNX Runtime or the export fails."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from . import onnx_cache

    key = None if weights_sha256 is None else onnx_cache.graph_key(weights_sha256, net, example.shape, OPSET)
    graph = None if key is None else onnx_cache.cached_graph(key)
    if graph is not None:
        try:
            return _session(ort, graph, threads)
        except Exception:  # noqa: BLE001 - a damaged cached graph: export it again
            onnx_cache.forget_graph(key)
    try:
        graph = _export(net, example)
        session = _session(ort, graph, threads)
    except Exception:  # noqa: BLE001 - any export or runtime failure only costs speed
        return None
    if key is not None:
        onnx_cache.store_graph(key, graph)
    return session


OPSET = 17


def _export(net, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about the legacy path and instance norm
        torch.onnx.export(
            net,
            (example,),
            buffer,
            dynamo=False,  # the TorchScript-based exporter: no onnxscript needed, dynamic sizes kept
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "n", 2: "d", 3: "h", 4: "w"}, "logits": {0: "n", 2: "d", 3: "h", 4: "w"}},
            opset_version=OPSET,
        )
    return buffer.getvalue()


def _session(ort, graph: bytes, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle worker threads do not spin-wait: between two networks numpy and SimpleITK use the same two cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No arena and no memory pattern: each session kept its own pool of its largest activations, and four of them
    # took the fp32 command-line plan to 1.65 GB; without them 0.97-1.0 GB for ~0.3 s more (8.36 -> 8.66 s,
    # medians of 3 alternating runs, docs/results.md).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _onnx_caller(session):
    def call(x: torch.Tensor) -> torch.Tensor:
        image = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {"image": image})[0])

    return call


def _torchscript(net, example: torch.Tensor):
    """Traced and frozen in the channels-last layout (on this machine ~3x faster than the plain module)."""
    layout = torch.channels_last_3d
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # torch 2.13 deprecates tracing (it still works); the tracer's warning about InstanceNorm's check of
            # the channel count is moot (channels are fixed; only spatial sizes vary, which the trace handles).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            frozen = torch.jit.optimize_for_inference(
                torch.jit.trace(net.to(memory_format=layout), example.to(memory_format=layout))
            )
    except Exception:  # noqa: BLE001
        net.to(memory_format=torch.contiguous_format)
        return None
    return lambda x: frozen(x.to(memory_format=layout))
