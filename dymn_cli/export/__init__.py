"""`dymn-tag export`: the tagger as one ONNX graph from waveform to scores (float32, or int8)."""
