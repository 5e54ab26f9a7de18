"""Code the tests share: fakes of the libraries that cannot run here, small models and exports, servers.

Test modules import from here and never from each other (tests/test_architecture.py checks it):

* ``fake_cuda``, ``fake_tensorrt``: the one fake of pycuda and the one fake of TensorRT.
* ``engine_metadata``: a complete plan sidecar; ``onnx_graphs``: tiny ONNX graphs for the build side.
* ``model_utils``, ``runtime_models``, ``functional_reference``, ``parity``, ``int8``: models with
  realistic weights, the session's small exports, an independent forward pass, export parity, INT8 set-up.
* ``faults``, ``triton_server``, ``video``, ``video_rtsp_server``: fault injection, a Triton
  server, generated clips and a loopback RTSP camera (run by /usr/bin/python3).
* ``gst_element``: ``gst-launch-1.0`` pipelines with the ``fornetseg`` element and the embedding examples,
  in processes of their own under the element's environment (``make gst-env``).
"""
