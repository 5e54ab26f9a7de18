"""Complete records of every type, for tests that need one without running the command that writes it."""

from __future__ import annotations

from fornet.calibration.int8_calibrate import METHOD_SETTINGS, ActivationRanges, ChannelStats, Preprocessing
from fornet.calibration.metrics import ParitySummary
from fornet.export.int8.accuracy_gate import ClassIouChange, GateRecord
from fornet.export.int8.manifest import (
    CalibrationKey,
    CalibrationRun,
    ImageSetKey,
    Int8Manifest,
    MethodKey,
    QuantizationRecord,
    RangesFile,
    TensorRTInt8Record,
    TrtCacheRecord,
)
from fornet.export.int8.sensitivity import FallbackStep, LayerSensitivity, SensitivityRecord
from fornet.export.int8.tensorrt_qdq import MODELOPT_SETTINGS
from fornet.records import FileDigest
from fornet.runtime.bench.environment import Environment
from fornet.runtime.bench.record import (
    BenchReport,
    Bf16GateRecord,
    EngineUnderTest,
    ScopeRecord,
    SpeedRecord,
    StageSummary,
)
from fornet.runtime.bench.timing import LatencyStats, TimingRecord

_SCOPE = ScopeRecord(title="t", results={"onnxruntime-cpu": LatencyStats((1.0, 2.0)).to_record(),
                                         "openvino-bf16-cpu": LatencyStats((0.5, 1.0)).to_record()},
                     notes=(), speedup_over_engine={"openvino-bf16-cpu": 2.0})
_PARITY = ParitySummary(names=("openvino-fp32-cpu", "openvino-bf16-cpu"), boundary_width=3, pixels=64, agreement=0.99,
                        boundary_pixels=8, boundary_agreement=None, miou_delta=-0.002,
                        iou_delta={"road": -0.002, "car": None}, text="t")

#: A benchmark of an ONNX file on the CPU beside OpenVINO BF16 (speed and the BF16 gate).
BENCH = BenchReport(
    fornet_version="0.1.0", command="fornet-bench", trtexec="trtexec --loadEngine=x.plan", reference=None,
    engine=EngineUnderTest(path="x", backend="onnxruntime-cpu", model="m", input_size=(8, 8), batch=1,
                           precision="fp32", variant="lite", gpu_prepost=False, cuda_graph=False),
    environment=Environment(platform="p", python="3.11", cpu="c", cpu_count=1, cpus_usable=1, cpu_clock_mhz=None,
                            load_average=(0.0,), threads=None, versions={"numpy": "2"}, gpu=None, jetson=None,
                            load_average_after=(0.0,)),
    speed=SpeedRecord(frame_size=(8, 8), input_size=(8, 8), batch=1, timer="t", engine="onnxruntime-cpu",
                      reference=None, settings=TimingRecord(description="d"), warnings=("noisy",),
                      scopes={s: _SCOPE for s in ("compute", "copies", "end_to_end")},
                      stages={"onnxruntime-cpu": StageSummary(pre_ms=0.1, infer_ms=1.0, post_ms=0.1,
                                                              prepost_share=0.15)}),
    bf16_gate={"openvino-bf16-cpu": Bf16GateRecord(fp32="openvino-fp32-cpu", split="val", images=4,
                                                   max_miou_drop_points=0.5, fp32_miou=50.0, bf16_miou=49.8,
                                                   miou_drop_points=0.2, passed=True, parity=_PARITY)},
)

_GATE = GateRecord(data="data", split="val", images=4, max_miou_drop_points=1.0, fp32_miou=50.0,
                   int8_miou=49.5, miou_drop_points=0.5, pixel_agreement=0.99, boundary_agreement=0.9,
                   boundary_width=3, selected_cells=[[3, 6, 10, 13]], expected_cells=[3, 6, 10, 13], k_exact=True,
                   mask_agreement=1.0, passed=True,
                   iou={"road": ClassIouChange(90.0, 89.5, -0.5), "car": ClassIouChange(None, None, None)})

#: A passed INT8 export with the fallback, the cache and the TensorRT file.
MANIFEST = Int8Manifest(
    status="passed",
    calibration_key=CalibrationKey(
        fp32_onnx_sha256="1" * 64, images=ImageSetKey("train", 6, "2" * 64),
        preprocessing=Preprocessing(function="fornet.calibration.preprocess.preprocess", resize="cv2.resize",
                                    size=(64, 128), input="normalised float32 NCHW", channel_order="RGB",
                                    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        method=MethodKey(name="minmax"), tools={"fornet-deploy": "0.1.0", "onnxruntime": "1.22.0"}),
    calibration=CalibrationRun(data="data", split="train", images=("a.png", "b.png"), reused=False,
                               input_stats=ChannelStats((-2.0,), (2.5,), (0.1,), 100), seconds=1.5),
    ranges=RangesFile("fornet_int8.ranges.json", "3" * 64, 40),
    quantization=QuantizationRecord(tool="onnxruntime quantize_static (QDQ)", op_types=("Conv",),
                                    extra_options={"ActivationSymmetric": True}, activations="INT8",
                                    weights="INT8", bias="FP32", float_nodes=("/head/Conv",),
                                    fallback_nodes=("/decoder/Conv",), int8_convolutions=20,
                                    tensorrt_placement_issues=()),
    accuracy_gate=_GATE,
    sensitivity=SensitivityRecord(images=2, metric="fraction of pixels",
                                  ranking=(LayerSensitivity("/decoder/Conv", 0.2),),
                                  steps=(FallbackStep(("/decoder/Conv",), 49.5, 0.5, True),)),
    int8_onnx=FileDigest("fornet_int8.onnx", "4" * 64),
    trt_cache=TrtCacheRecord(file="fornet.calib.cache", sha256="5" * 64, tensors=40, header="TRT-100300-",
                             tensorrt_version="10.3.0", note="n"),
    tensorrt=TensorRTInt8Record(file="fornet_int8_tensorrt.onnx", tool="nvidia-modelopt 0.47.0",
                                settings=MODELOPT_SETTINGS, base_precision="fp16", placement="no issues",
                                accuracy_gate=None, sha256="6" * 64),
)

#: Entropy ranges of two tensors.
RANGES = ActivationRanges("entropy", METHOD_SETTINGS["entropy"], {"image": (-2.1, 2.6), "t": (0.0, 3.5)})
