from common import *
import onnxruntime as ort
t64 = Embedder("all-MiniLM-L6-v2", backend="torch", batch_size=64)
t32 = Embedder("all-MiniLM-L6-v2", backend="torch", batch_size=32)
t16 = Embedder("all-MiniLM-L6-v2", backend="torch", batch_size=16)
i64 = Embedder("all-MiniLM-L6-v2", backend="onnx-int8", batch_size=64)
i32 = Embedder("all-MiniLM-L6-v2", backend="onnx-int8", batch_size=32)
cands = {"torch b64": t64.encode, "torch b32": t32.encode, "torch b16": t16.encode, "onnx-int8 b64 (new opts)": i64.encode, "onnx-int8 b32 (new opts)": i32.encode}
bench(cands, 128, 3)
