"""``fornet_probe.py`` of the DeepStream package: labels from nvinfer's tensor meta, drawn as an overlay.

A template filled with the model's layer name, input size and colours; it runs on the device
(DeepStream 7.x Python bindings), on Jetson and on dGPU (x86) DeepStream: there the probe can map the
NVMM surfaces only in CUDA unified memory, so nvstreammux and nvvideoconvert get
``nvbuf-memory-type=3``. GStreamer and pyds are imported where used, so its pure parts load anywhere.
"""

from __future__ import annotations

PROBE_PY = '''"""FoR-Net on DeepStream 7.x: labels from nvinfer's tensor meta (labels form), blended into the frames.

    python3 fornet_probe.py file:///path/to/video.mp4        # or rtsp://camera/stream

Pipeline: nvurisrcbin -> nvstreammux -> nvinfer (config_infer_primary_fornet_labels.txt:
network-type=100, output-tensor-meta=1) -> nvvideoconvert -> RGBA -> [probe] -> nvdsosd -> sink.
On dGPU (x86) DeepStream nvstreammux and nvvideoconvert allocate CUDA unified memory
(nvbuf-memory-type=3), which the probe can map; Jetson's surfaces are mappable as they are.
The probe reads the int32 layer "{layer}" ({height}x{width}) of each frame, blends the class
colours into the frame (nearest upsample to the frame size) and prints class pixel shares.
Written by `fornet export --deepstream`; needs pyds (DeepStream Python bindings), numpy, python3-gi.
"""

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


def pipeline_description(uri, machine=platform.machine()):
    """The gst-launch description of the pipeline; unified surface memory on dGPU (not aarch64)."""
    memory = "" if machine == "aarch64" else f" nvbuf-memory-type={{UNIFIED_MEMORY}}"
    return (f"nvurisrcbin uri={{uri}} ! m.sink_0 nvstreammux name=m batch-size=1 width=1920 height=1080{{memory}} "
            "! nvinfer config-file-path=config_infer_primary_fornet_labels.txt "
            f"! nvvideoconvert{{memory}} ! video/x-raw(memory:NVMM),format=RGBA ! nvdsosd name=osd "
            "! fakesink sync=false")


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
    batch = pyds.gst_buffer_get_nvds_batch_meta(hash(buffer))
    frames = batch.frame_meta_list
    while frames is not None:
        frame_meta = pyds.NvDsFrameMeta.cast(frames.data)
        metas = frame_meta.frame_user_meta_list
        while metas is not None:
            user_meta = pyds.NvDsUserMeta.cast(metas.data)
            if user_meta.base_meta.meta_type == pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META:
                labels = labels_of(pyds.NvDsInferTensorMeta.cast(user_meta.user_meta_data))
                if labels is not None:
                    blend(pyds.get_nvds_buf_surface(hash(buffer), frame_meta.batch_id), labels)
                    if platform.machine() == "aarch64":
                        pyds.unmap_nvds_buf_surface(hash(buffer), frame_meta.batch_id)
                    state["frames"] += 1
                    if state["frames"] % 30 == 0:
                        shares = np.bincount(labels.ravel(), minlength=len(CLASSES)) / labels.size
                        top = sorted(zip(shares, CLASSES), reverse=True)[:3]
                        print(f"frame {{frame_meta.frame_num}}: " + ", ".join(f"{{n}} {{s:.0%}}" for s, n in top))
            metas = metas.next
        frames = frames.next
    return Gst.PadProbeReturn.OK


def main(uri):
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst

    Gst.init(None)
    pipeline = Gst.parse_launch(pipeline_description(uri))
    state = {{"frames": 0}}
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "file:///path/to/video.mp4")
'''
