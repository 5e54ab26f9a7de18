"""The documented keys of DeepStream's config files and the type nvinfer / deepstream-app reads each with.

From the Gst-nvinfer "configuration file specifications" table (DeepStream 7.x) and deepstream-app's
configuration groups. No package ships these lists; a key not listed here is reported by the check,
because nvinfer silently ignores a misspelled key.
"""

from __future__ import annotations

_NVINFER_PROPERTY = {
    **dict.fromkeys((
        "gpu-id", "batch-size", "network-mode", "network-type", "model-color-format", "process-mode",
        "gie-unique-id", "operate-on-gie-id", "interval", "output-tensor-meta", "segmentation-output-order",
        "num-detected-classes", "cluster-mode", "workspace-size", "input-object-min-width",
        "input-object-min-height", "input-object-max-width", "input-object-max-height", "scaling-filter",
        "scaling-compute-hw", "network-input-order", "use-dla-core", "secondary-reinfer-interval",
    ), "int"),
    **dict.fromkeys(("net-scale-factor", "segmentation-threshold", "classifier-threshold"), "double"),
    **dict.fromkeys((
        "maintain-aspect-ratio", "symmetric-padding", "enable-dla", "classifier-async-mode",
        "force-implicit-batch-dim", "output-instance-mask", "crop-objects-to-roi-boundary",
        "disable-output-host-copy",
    ), "bool"),
    **dict.fromkeys((
        "onnx-file", "model-engine-file", "labelfile-path", "custom-lib-path", "int8-calib-file",
        "output-blob-names", "parse-bbox-func-name", "parse-classifier-func-name", "engine-create-func-name",
        "mean-file", "model-file", "proto-file", "tlt-encoded-model", "tlt-model-key", "custom-network-config",
        "layer-device-precision", "output-io-formats", "uff-file", "uff-input-blob-name",
    ), "string"),
    **dict.fromkeys(("operate-on-class-ids", "filter-out-class-ids", "infer-dims"), "int-list"),
    "offsets": "double-list",
}

#: Group -> key -> type of an nvinfer config file (``config_infer_*.txt``).
NVINFER_SCHEMA: dict[str, dict[str, str]] = {"property": _NVINFER_PROPERTY}

#: Group (``*``: numbered groups) -> key -> type of a deepstream-app config file (the keys this package writes
#: and their documented neighbours).
DEEPSTREAM_APP_SCHEMA: dict[str, dict[str, str]] = {
    "application": {"enable-perf-measurement": "int", "perf-measurement-interval-sec": "int"},
    "tiled-display": {"enable": "int", "rows": "int", "columns": "int", "width": "int", "height": "int",
                      "gpu-id": "int"},
    "source*": {"enable": "int", "type": "int", "uri": "string", "num-sources": "int", "gpu-id": "int",
                "latency": "int", "rtsp-reconnect-interval-sec": "int", "select-rtp-protocol": "int",
                "drop-frame-interval": "int", "cudadec-memtype": "int"},
    "streammux": {"gpu-id": "int", "live-source": "int", "batch-size": "int", "batched-push-timeout": "int",
                  "width": "int", "height": "int", "enable-padding": "int", "nvbuf-memory-type": "int"},
    "primary-gie": {"enable": "int", "gpu-id": "int", "batch-size": "int", "gie-unique-id": "int",
                    "config-file": "string", "model-engine-file": "string", "interval": "int"},
    "segvisual": {"enable": "int", "gpu-id": "int", "batch-size": "int", "width": "int", "height": "int",
                  "original-res": "int"},
    "osd": {"enable": "int", "gpu-id": "int"},
    "sink*": {"enable": "int", "type": "int", "sync": "int", "gpu-id": "int", "codec": "int", "bitrate": "int",
              "output-file": "string", "container": "int", "enc-type": "int", "rtsp-port": "int",
              "udp-port": "int", "source-id": "int"},
    "tests": {"file-loop": "int"},
}
