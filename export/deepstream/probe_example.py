"""``fornet_probe.py`` of the DeepStream package: labels from nvinfer's tensor meta, drawn as an overlay; or (scores
packages, ``--gpu-parser``) the scores labelled on the GPU by the package's library, drawn by nvsegvisual.

A template filled with the model's layer name, input size and colours; it runs on the device
(DeepStream 7.x Python bindings), on Jetson and on dGPU (x86) DeepStream: there the probe can map the
NVMM surfaces only in CUDA unified memory, so nvstreammux and nvvideoconvert get
``nvbuf-memory-type=3``. GStreamer and pyds are imported where used, so its pure parts load anywhere.
"""

from __future__ import annotations

PROBE_PY = '''"""FoR-Net on DeepStream 7.x: labels from nvinfer's tensor meta (labels form), blended into the frames.

    python3 fornet_probe.py file:///path/to/video.mp4        # or rtsp://camera/stream
    python3 fornet_probe.py --gpu-parser file:///path/to/video.mp4

--gpu-parser (scores packages): nvinfer runs {gpu_config} (network-type=100, the scores
left on the GPU as tensor meta); a probe on nvinfer's src pad calls {gpu_library}
(build it first: README.md), which labels each frame on the GPU with nvinfer's parser rule and attaches
NvDsInferSegmentationMeta; nvsegvisual draws it and a probe on its sink pad prints class pixel shares.

Pipeline: nvurisrcbin -> nvstreammux -> nvinfer (config_infer_primary_fornet_labels.txt:
network-type=100, output-tensor-meta=1) -> nvvideoconvert -> RGBA -> [probe] -> nvdsosd -> sink.
On dGPU (x86) DeepStream nvstreammux and nvvideoconvert allocate CUDA unified memory
(nvbuf-memory-type=3), which the probe can map; Jetson's surfaces are mappable as they are.
The probe reads the int32 layer "{layer}" ({height}x{width}) of each frame, blends the class
colours into the frame (nearest upsample to the frame size) and prints class pixel shares.
Written by `fornet export --deepstream`; needs pyds (DeepStream Python bindings), numpy, python3-gi.
"""

import argparse
import ctypes
import platform
import sys

import numpy as np

LAYER = "{layer}"
HEIGHT, WIDTH = {height}, {width}
COLOURS_RGB = np.array({colors}, dtype=np.uint8)
CLASSES = {classes}
ALPHA = 0.5
#: NVBUF_MEM_CUDA_UNIFIED (nvbufsurface.h): surface memory that a dGPU probe can map into host memory.
UNIFIED_MEMORY = 3
#: The nvinfer config whose scores the GPU library labels (None: this package has no scores form).
GPU_CONFIG = {gpu_config}
GPU_LIBRARY = "./{gpu_library}"


def pipeline_description(uri, machine=platform.machine()):
    """The gst-launch description of the pipeline; unified surface memory on dGPU (not aarch64)."""
    memory = "" if machine == "aarch64" else f" nvbuf-memory-type={{UNIFIED_MEMORY}}"
    return (f"nvurisrcbin uri={{uri}} ! m.sink_0 nvstreammux name=m batch-size=1 width=1920 height=1080{{memory}} "
            "! nvinfer config-file-path=config_infer_primary_fornet_labels.txt "
            f"! nvvideoconvert{{memory}} ! video/x-raw(memory:NVMM),format=RGBA ! nvdsosd name=osd "
            "! fakesink sync=false")


def gpu_pipeline_description(uri, config=GPU_CONFIG):
    """The pipeline of --gpu-parser: nvinfer (scores as tensor meta) -> [library probe] -> nvsegvisual."""
    return (f"nvurisrcbin uri={{uri}} ! m.sink_0 nvstreammux name=m batch-size=1 width=1920 height=1080 "
            f"! nvinfer name=infer config-file-path={{config}} "
            f"! nvsegvisual name=seg width={{WIDTH}} height={{HEIGHT}} ! fakesink sync=false")


def parser_settings(key_file):
    """The library's arguments from the nvinfer config (a loaded GLib.KeyFile): gie-unique-id, output layer,
    num-detected-classes, segmentation-threshold, segmentation-output-order."""
    group = "property"
    return (key_file.get_integer(group, "gie-unique-id"), key_file.get_string(group, "output-blob-names"),
            key_file.get_integer(group, "num-detected-classes"),
            key_file.get_double(group, "segmentation-threshold"),
            key_file.get_integer(group, "segmentation-output-order"))


def load_gpu_parser(config=GPU_CONFIG, library=GPU_LIBRARY):
    """The GPU library and its context for the nvinfer of ``config``."""
    from gi.repository import GLib

    key_file = GLib.KeyFile()
    key_file.load_from_file(config, GLib.KeyFileFlags.NONE)
    unique_id, layer, classes, threshold, order = parser_settings(key_file)
    try:
        lib = ctypes.CDLL(library)
    except OSError as exc:
        raise SystemExit(f"cannot load {{library}} ({{exc}}): build it first with the nvcc command in README.md")
    lib.fornet_segmentation_meta_create.restype = ctypes.c_void_p
    lib.fornet_segmentation_meta_create.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_int, ctypes.c_float,
                                                    ctypes.c_int]
    lib.fornet_segmentation_meta_attach.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fornet_segmentation_meta_destroy.argtypes = [ctypes.c_void_p]
    lib.fornet_segmentation_status_text.restype = ctypes.c_char_p
    context = lib.fornet_segmentation_meta_create(unique_id, layer.encode(), classes, threshold, order)
    if not context:
        raise SystemExit(f"{{config}}: segmentation-output-order must be 0 or 1 and num-detected-classes >= 0")
    return lib, context


def attach_probe(pad, info, gpu):
    """nvinfer's src pad: label every frame's scores on the GPU and attach NvDsInferSegmentationMeta."""
    from gi.repository import Gst

    lib, context = gpu
    status = lib.fornet_segmentation_meta_attach(context, hash(info.get_buffer()))
    if status < 0:
        print(f"{{GPU_LIBRARY}}: {{lib.fornet_segmentation_status_text(-status).decode()}}", file=sys.stderr)
    return Gst.PadProbeReturn.OK


def segmentation_probe(pad, info, state):
    """nvsegvisual's sink pad: read NVDSINFER_SEGMENTATION_META as nvsegvisual and any downstream probe do."""
    import pyds
    from gi.repository import Gst

    for frame_meta, user_meta in frame_user_metas(info.get_buffer(),
                                                  pyds.NvDsMetaType.NVDSINFER_SEGMENTATION_META):
        segmentation = pyds.NvDsInferSegmentationMeta.cast(user_meta.user_meta_data)
        report(state, frame_meta.frame_num, np.asarray(pyds.get_segmentation_masks(segmentation)))
    return Gst.PadProbeReturn.OK


def frame_user_metas(buffer, meta_type):
    """Each frame's user metas of ``meta_type`` in the batch meta of ``buffer``, as (frame meta, user meta)."""
    import pyds

    frames = pyds.gst_buffer_get_nvds_batch_meta(hash(buffer)).frame_meta_list
    while frames is not None:
        frame_meta = pyds.NvDsFrameMeta.cast(frames.data)
        metas = frame_meta.frame_user_meta_list
        while metas is not None:
            user_meta = pyds.NvDsUserMeta.cast(metas.data)
            if user_meta.base_meta.meta_type == meta_type:
                yield frame_meta, user_meta
            metas = metas.next
        frames = frames.next


def report(state, frame_num, labels):
    """Count a labelled frame; every 30th, print its three largest class pixel shares."""
    state["frames"] += 1
    if state["frames"] % 30 == 0:
        shares = np.bincount(labels[labels >= 0].ravel(), minlength=len(CLASSES)) / labels.size
        top = sorted(zip(shares, CLASSES), reverse=True)[:3]
        print(f"frame {{frame_num}}: " + ", ".join(f"{{n}} {{s:.0%}}" for s, n in top))


def labels_of(tensor_meta):
    """The H x W labels in one frame's tensor meta (None when the layer is absent)."""
    import pyds

    for index in range(tensor_meta.num_output_layers):
        layer = pyds.get_nvds_LayerInfo(tensor_meta, index)
        if layer.layerName == LAYER:
            pointer = ctypes.cast(pyds.get_ptr(layer.buffer), ctypes.POINTER(ctypes.c_int32))
            return np.ctypeslib.as_array(pointer, shape=(HEIGHT, WIDTH)).astype(np.uint8)
    return None


def blend(frame_rgba, labels):
    """Blend the class colours into the RGBA frame, in place (nearest upsample of the labels)."""
    h, w = frame_rgba.shape[:2]
    rows = np.arange(h) * HEIGHT // h
    cols = np.arange(w) * WIDTH // w
    colours = COLOURS_RGB[labels[rows[:, None], cols[None, :]]]
    rgb = frame_rgba[..., :3]
    rgb[...] = (rgb * (1 - ALPHA) + colours * ALPHA).astype(np.uint8)


def probe(pad, info, state):
    import pyds
    from gi.repository import Gst

    buffer = info.get_buffer()
    for frame_meta, user_meta in frame_user_metas(buffer, pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META):
        labels = labels_of(pyds.NvDsInferTensorMeta.cast(user_meta.user_meta_data))
        if labels is not None:
            blend(pyds.get_nvds_buf_surface(hash(buffer), frame_meta.batch_id), labels)
            if platform.machine() == "aarch64":
                pyds.unmap_nvds_buf_surface(hash(buffer), frame_meta.batch_id)
            report(state, frame_meta.frame_num, labels)
    return Gst.PadProbeReturn.OK


def main(argv=None):
    parser = argparse.ArgumentParser(description="FoR-Net on DeepStream: labels form, or --gpu-parser")
    parser.add_argument("uri", nargs="?", default="file:///path/to/video.mp4", help="file:///... or rtsp://...")
    parser.add_argument("--gpu-parser", action="store_true",
                        help=f"label the scores on the GPU with {{GPU_LIBRARY}} and draw with nvsegvisual")
    args = parser.parse_args(argv)
    if args.gpu_parser and GPU_CONFIG is None:
        parser.error("this package has no scores form (exported with --output labels): --gpu-parser needs one")

    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst

    Gst.init(None)
    state = {{"frames": 0}}
    gpu = None
    if args.gpu_parser:
        gpu = load_gpu_parser()
        pipeline = Gst.parse_launch(gpu_pipeline_description(args.uri))
        pipeline.get_by_name("infer").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, attach_probe, gpu)
        pipeline.get_by_name("seg").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, segmentation_probe,
                                                                    state)
    else:
        pipeline = Gst.parse_launch(pipeline_description(args.uri))
        pipeline.get_by_name("osd").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe, state)
    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message::eos", lambda *_: loop.quit())
    bus.connect("message::error", lambda _, message: (print(message.parse_error()), loop.quit()))
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.set_state(Gst.State.NULL)
        if gpu is not None:
            gpu[0].fornet_segmentation_meta_destroy(gpu[1])


if __name__ == "__main__":
    main()
'''
