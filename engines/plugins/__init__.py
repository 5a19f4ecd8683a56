"""TensorRT plugins (imported lazily by engines.trt)."""
