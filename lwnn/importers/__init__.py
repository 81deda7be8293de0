"""Importers: source formats (ONNX, Keras) -> lwnn Graph."""
