"""Deployment of fitted models: ONNX export with its parity gate (`oddity.export.onnx`, needs
torch) and the onnxruntime engine that runs an export without torch (`oddity.export.engine`)."""
