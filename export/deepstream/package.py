"""``fornet export --deepstream DIR``: an nvinfer package for DeepStream 7.x (JetPack 6) from a raw-input export.

Files (built in a staging folder, renamed into place):

* ``fornet_scores.onnx`` + ``config_infer_primary_fornet_scores.txt``: network-type=2; nvinfer copies
  ``C x H x W`` float scores to the host (4 C bytes per pixel, 76 for 19 classes) and runs the argmax
  on the CPU; attaches ``NvDsInferSegmentationMeta``, which ``nvsegvisual`` draws. Needs ``--output logits``.
* ``fornet_labels.onnx`` + ``config_infer_primary_fornet_labels.txt``: network-type=100 +
  output-tensor-meta=1; the argmax runs in the graph on the GPU and 4 bytes per pixel (int32) leave
  it; a probe (``fornet_probe.py``, pyds) reads the tensor meta.
* ``config_infer_primary_fornet_scores_gpu.txt`` + ``fornet_segmentation_argmax.cu``,
  ``fornet_segmentation_meta.cpp``, ``fornet_segmentation.h`` (scores form): the scores graph with
  network-type=100, output-tensor-meta=1 and no host copy; one library built on the device (nvinfer's
  segmentation parser as a CUDA kernel, and the code a pad probe calls to label each frame's tensor meta on
  the GPU and attach ``NvDsInferSegmentationMeta``, which ``nvsegvisual`` draws); ``fornet_probe.py
  --gpu-parser`` runs it.
* ``labels.txt``, ``deepstream_app_config.txt`` (a file or RTSP URI source; the software encoder on
  modules without NVENC), ``fornet_probe.py``, README.md (with the ``fornet build`` commands of the
  strongly typed plans an FP16 package names as ``model-engine-file``).

``custom-lib-path`` names the TopKGate plugin library when the graph holds the plugin node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fornet.export.deepstream.graph import CLASS_MAP, nvinfer_graph
from fornet.export.deepstream.nvinfer import (
    NETWORK_MODES,
    SCORES_GPU,
    STRONGLY_TYPED_PRECISIONS,
    NvinferForm,
    nvinfer_config,
)
from fornet.export.deepstream.probe_example import PROBE_PY
from fornet.export.errors import ExportError
from fornet.export.staging import staged_folder
from fornet.export.tensorrt.options import BuildOptions, default_plan_path, engine_build_command
from fornet.model.memory import TARGET_MEMORY_GIB
from fornet.runtime.model_io import ModelIO, ModelSidecar, read_sidecar

#: The plugin library `fornet build-plugin` builds on the device.
PLUGIN_LIBRARY = "libfornet_plugins.so"
_HERE = Path(__file__).parent
#: nvinfer's segmentation parser on the GPU (CUDA source shipped in the scores-form package).
GPU_PARSER_SOURCE = _HERE / "segmentation_argmax.cu"
GPU_PARSER_FILE = "fornet_segmentation_argmax.cu"
#: The DeepStream side: labels each frame's tensor meta with the kernel and attaches NvDsInferSegmentationMeta.
GPU_META_SOURCE = _HERE / "segmentation_meta.cpp"
GPU_META_FILE = "fornet_segmentation_meta.cpp"
#: Their C interface (the same name in the package and here: both sources include it).
GPU_HEADER_SOURCE = _HERE / "fornet_segmentation.h"
#: Package file name -> source, of the GPU parser library's sources.
GPU_PARSER_SOURCES = {GPU_PARSER_FILE: GPU_PARSER_SOURCE, GPU_META_FILE: GPU_META_SOURCE,
                      GPU_HEADER_SOURCE.name: GPU_HEADER_SOURCE}
#: The library built from them on the device, and the nvinfer config it reads the scores of.
GPU_PARSER_LIBRARY = "libfornet_segmentation_meta.so"
GPU_SCORES_CONFIG = f"config_infer_primary_fornet_{SCORES_GPU}.txt"
#: Where DeepStream installs itself (its headers under sources/includes, its libraries under lib).
DEEPSTREAM_ROOT = "/opt/nvidia/deepstream/deepstream"
DEFAULT_URI = "file:///path/to/video.mp4"
#: The kind of package written (its ``.fornet-package.json`` marker; see :mod:`fornet.export.staging`).
PACKAGE_KIND = "DeepStream package"
#: ``--target`` modules without a hardware video encoder (NVENC): the app config uses the software encoder.
TARGETS_WITHOUT_NVENC = ("orin-nano-4gb", "orin-nano-8gb")
#: deepstream-app's ``enc-type``: 0 the NVENC hardware encoder, 1 the software (CPU) encoder.
HARDWARE_ENCODER, SOFTWARE_ENCODER = 0, 1


@dataclass(frozen=True)
class DeepStreamOptions:
    """Package settings.

    Attributes:
        uri: the deepstream-app source: ``file:///...`` or ``rtsp://...``.
        batch: nvinfer batch size (streams batched together).
        target: the Jetson module (``--target``; see :data:`fornet.model.memory.TARGET_MEMORY_GIB`), None when
            unknown: modules without NVENC (:data:`TARGETS_WITHOUT_NVENC`) get the software encoder.
        overwrite: replace an existing folder (only once the new one is complete).
    """

    uri: str = DEFAULT_URI
    batch: int = 1
    target: str | None = None
    overwrite: bool = False

    def encoder(self) -> int:
        """deepstream-app's ``enc-type`` for the target."""
        return SOFTWARE_ENCODER if self.target in TARGETS_WITHOUT_NVENC else HARDWARE_ENCODER


def _uses_plugin(onnx_path: Path) -> bool:
    import onnx

    return any(node.op_type == "TopKGate" for node in onnx.load(str(onnx_path), load_external_data=False).graph.node)


def _forms(io: ModelIO) -> list[str]:
    return ["labels"] if io.labels_output else ["scores", "labels"]


def _precision(io: ModelIO) -> str:
    precision = (io.export_precision or "fp32").lower()
    return precision if precision in NETWORK_MODES else "fp32"


def app_config(io: ModelIO, primary: str, options: DeepStreamOptions, segvisual: bool) -> str:
    """``deepstream_app_config.txt``: one URI source, the primary nvinfer, seg visualisation, a file sink."""
    h, w = io.input_size
    rtsp = options.uri.startswith("rtsp://")
    return f"""# deepstream-app -c deepstream_app_config.txt   (written by `fornet export --deepstream`)
[application]
enable-perf-measurement=1
perf-measurement-interval-sec=5

[source0]
enable=1
# type 3: a URI (file:// or rtsp://) decoded by nvurisrcbin
type=3
uri={options.uri}
num-sources=1
gpu-id=0
{"latency=200" + chr(10) + "rtsp-reconnect-interval-sec=10" if rtsp else "cudadec-memtype=0"}

[streammux]
gpu-id=0
live-source={1 if rtsp else 0}
batch-size={options.batch}
batched-push-timeout=40000
width=1920
height=1080
enable-padding=0

[primary-gie]
enable=1
gpu-id=0
batch-size={options.batch}
gie-unique-id=1
config-file={primary}

[segvisual]
enable={1 if segvisual else 0}
gpu-id=0
batch-size={options.batch}
width={w}
height={h}

[tiled-display]
enable=1
rows=1
columns=1
width={w}
height={h}

[osd]
enable=0

[sink0]
enable=1
# type 3: encode to a file
type=3
container=1
codec=1
# enc-type 0: the NVENC hardware encoder; 1: the software encoder (Orin Nano has no NVENC: fornet export --target)
enc-type={options.encoder()}
sync=0
output-file=fornet_out.mp4

[tests]
file-loop=0
"""


def gpu_parser_build_command(arch: str = "sm_87", deepstream_root: str = DEEPSTREAM_ROOT) -> str:
    """The shell command, run in the package folder on the device, that builds :data:`GPU_PARSER_LIBRARY` (the
    kernel and the meta code in one library) against DeepStream's headers and libraries, for ``sm_<arch>``."""
    return (f"nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -arch={arch} -I{deepstream_root}/sources/includes "
            f"$(pkg-config --cflags-only-I gstreamer-video-1.0) -o {GPU_PARSER_LIBRARY} {GPU_PARSER_FILE} "
            f"{GPU_META_FILE} -L{deepstream_root}/lib -Xlinker -rpath={deepstream_root}/lib -lnvdsgst_meta "
            "-lnvds_meta $(pkg-config --libs gstreamer-1.0)")


def plan_build_commands(forms: list[str], plugin: bool) -> list[str]:
    """The ``fornet build`` commands that build, on the device, the strongly typed plans of the forms' graphs."""
    options = BuildOptions(plugin=Path(PLUGIN_LIBRARY)) if plugin else None
    return [engine_build_command(f"fornet_{form}.onnx", default_plan_path(f"fornet_{form}.onnx"), options)
            for form in forms]


def device_plan_commands(onnx_path: str | Path) -> list[str]:
    """The commands to run in the package folder on the device before deepstream-app: the strongly typed plans an
    FP16 package names as ``model-engine-file`` (none for other precisions)."""
    io = read_sidecar(ModelSidecar.path_for(Path(onnx_path)))
    if _precision(io) not in STRONGLY_TYPED_PRECISIONS:
        return []
    return plan_build_commands(_forms(io), _uses_plugin(Path(onnx_path)))


def _precision_text(precision: str, forms: list[str], plugin: bool) -> str:
    if precision not in STRONGLY_TYPED_PRECISIONS:
        return (f"The graphs are {precision.upper()}: nvinfer's own engine build (network-mode) runs them as "
                "exported.\n\n")
    commands = "\n".join(plan_build_commands(forms, plugin))
    return f"""The graphs are FP16 with the selector head and the Top-K gate kept in FP32. nvinfer would build
`onnx-file` as a weakly typed network (network-mode=2 lets TensorRT run any layer in FP16, those
included), so the configs name strongly typed plans as `model-engine-file`. Build them on the device
first, beside the configs (fornet-deploy installed there, JetPack's TensorRT):

```sh
{commands}
```

"""


def _scores_text(io: ModelIO) -> str:
    """The README's lines on the scores form and its GPU parser."""
    return f"""- `config_infer_primary_fornet_scores.txt` (network-type=2): the graph ends in Softmax (probabilities, so
  nvinfer's segmentation-threshold=0 labels every pixel); nvinfer copies them to the host
  ({4 * io.num_classes} bytes per pixel) and runs its parser loop on the CPU; `nvsegvisual` draws the result.
  Simple, slower at high resolution.
- `{GPU_SCORES_CONFIG}` (network-type=100,
  output-tensor-meta=1, disable-output-host-copy=1): the same graph, its scores left on the GPU.
  `{GPU_PARSER_LIBRARY}` labels them there with nvinfer's own parser rule (threshold, -1 class;
  `{GPU_PARSER_FILE}`), copies only int32 labels (4 bytes per pixel) to the host and attaches
  `NvDsInferSegmentationMeta` as nvinfer does (`{GPU_META_FILE}`), so `nvsegvisual` and probes
  reading NVDSINFER_SEGMENTATION_META work downstream (its `class_probabilities_map` is NULL: the
  probabilities stay on the GPU). Build it in this folder (DeepStream's headers, GStreamer's
  `libgstreamer-plugins-base1.0-dev`; sm_87 Orin, sm_110 Thor, your dGPU's otherwise):

  ```sh
  {gpu_parser_build_command()}
  ```

  `python3 fornet_probe.py --gpu-parser URI` runs nvinfer with this config, calls the library from a
  probe on nvinfer's src pad (ctypes: `fornet_segmentation_meta_attach(context, hash(buffer))`) and
  draws with `nvsegvisual`; a C pipeline adds `fornet_segmentation_meta_probe` as a buffer probe
  (`{GPU_HEADER_SOURCE.name}`).
  deepstream-app cannot run a probe, so its config keeps the CPU parser.
"""


def readme(io: ModelIO, forms: list[str], plugin: bool, precision: str) -> str:
    """The package's README (DeepStream 7.x on JetPack 6)."""
    plugin_text = (f"The graph holds the TopKGate plugin node: build `{PLUGIN_LIBRARY}` on the device (`fornet "
                   "build-plugin`) and put it beside the configs (`custom-lib-path`, which nvinfer dlopen()s).\n\n"
                   if plugin else "The graph uses TensorRT's own TopK (gate=native): no plugin library is needed.\n\n")
    scores = _scores_text(io) if "scores" in forms else ""
    precision_text = _precision_text(precision, forms, plugin)
    gpu_run = ("python3 fornet_probe.py --gpu-parser rtsp://camera/stream   # scores labelled on the GPU (build "
               f"{GPU_PARSER_LIBRARY} first)\n" if "scores" in forms else "")
    return f"""# FoR-Net for DeepStream 7.x (JetPack 6.1/6.2, TensorRT 10.3)

Written by `fornet export --deepstream`. Input {io.input_size[0]}x{io.input_size[1]}, {io.num_classes} classes,
channel order {io.channel_order}; normalisation is inside the graph (nvinfer's single net-scale-factor cannot
express per-channel std), so the configs pass pixels through (net-scale-factor=1, offsets=0).

{scores}- `config_infer_primary_fornet_labels.txt` (network-type=100, output-tensor-meta=1): the argmax runs in
  the graph on the GPU and only int32 labels (4 bytes per pixel) leave it; `fornet_probe.py` (pyds)
  reads them from the tensor meta and blends the class colours into the frames.

{plugin_text}{precision_text}Run (without a plan the first run builds the engine, minutes on Orin, and saves it as
model-engine-file):

```sh
deepstream-app -c deepstream_app_config.txt          # edit [source0] uri= first (file:// or rtsp://)
python3 fornet_probe.py rtsp://camera/stream           # labels form with the probe
{gpu_run}```
"""


def write_deepstream_package(onnx_path: str | Path, folder: str | Path, options: DeepStreamOptions | None = None
                             ) -> Path:
    """Write the package for a raw-input export at ``folder``; return ``folder``.

    Raises:
        ExportError: the export normalises outside the graph (export with ``--input raw``), or
            ``folder`` exists (without ``overwrite``, or is not a package this function wrote).
    """
    options = options or DeepStreamOptions()
    onnx_path, folder = Path(onnx_path), Path(folder)
    if options.batch < 1:
        raise ExportError(f"the DeepStream batch must be at least 1, got {options.batch}")
    if options.target is not None and options.target not in TARGET_MEMORY_GIB:
        raise ExportError(f"unknown target {options.target!r}; choose one of {', '.join(TARGET_MEMORY_GIB)}")
    io = read_sidecar(ModelSidecar.path_for(onnx_path))
    if not io.raw_input:
        raise ExportError("DeepStream needs the normalisation inside the graph (nvinfer has one scale for all "
                          "channels, ImageNet needs one std per channel): export with --input raw")
    plugin = _uses_plugin(onnx_path)
    forms = _forms(io)
    precision = _precision(io)
    with staged_folder(folder, PACKAGE_KIND, options.overwrite) as staging:
        for form in forms:
            onnx_file = f"fornet_{form}.onnx"
            (staging / onnx_file).write_bytes(nvinfer_graph(onnx_path, form, not io.labels_output))
            (staging / f"config_infer_primary_fornet_{form}.txt").write_text(nvinfer_config(
                io, NvinferForm(form, onnx_file), precision=precision, batch=options.batch,
                plugin_library=PLUGIN_LIBRARY if plugin else None), encoding="utf-8")
        if "scores" in forms:
            (staging / GPU_SCORES_CONFIG).write_text(nvinfer_config(
                io, NvinferForm(SCORES_GPU, "fornet_scores.onnx"), precision=precision, batch=options.batch,
                plugin_library=PLUGIN_LIBRARY if plugin else None), encoding="utf-8")
            for name, source in GPU_PARSER_SOURCES.items():
                (staging / name).write_bytes(source.read_bytes())
        (staging / "labels.txt").write_text("".join(f"{name}\n" for name in io.classes), encoding="utf-8")
        primary = f"config_infer_primary_fornet_{forms[0]}.txt"
        (staging / "deepstream_app_config.txt").write_text(app_config(io, primary, options, "scores" in forms),
                                                           encoding="utf-8")
        h, w = io.input_size
        (staging / "fornet_probe.py").write_text(PROBE_PY.format(
            layer=CLASS_MAP, height=h, width=w, colors=json.dumps(io.colors.tolist()),
            classes=json.dumps(list(io.classes)), gpu_config=repr(GPU_SCORES_CONFIG if "scores" in forms else None),
            gpu_library=GPU_PARSER_LIBRARY), encoding="utf-8")
        (staging / "README.md").write_text(readme(io, forms, plugin, precision), encoding="utf-8")
    return folder
