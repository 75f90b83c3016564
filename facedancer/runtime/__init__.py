"""Where and at what precision the generator runs when swapping: TensorFlow, or ONNX Runtime (float32, int8).

`generator_runner` is the one entry point (FaceSwapper calls it); the ONNX pieces (`onnx_export`,
`providers`, `int8`) import onnxruntime / tf2onnx / onnx only when used, so the TensorFlow path works
without the `onnx` extra.
"""

from facedancer.runtime.select import PRECISIONS, RUNTIMES, GeneratorRunner, generator_runner

__all__ = ["PRECISIONS", "RUNTIMES", "GeneratorRunner", "generator_runner"]
