from common import *
import onnxruntime as ort
torch_e = Embedder("all-MiniLM-L6-v2", backend="torch")
def ortsess(path, threads=0, spin=True):
    so = ort.SessionOptions()
    if threads: so.intra_op_num_threads = threads
    if not spin: so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feed: s.run(None, feed)[0]
i8 = ortsess(CACHE/"onnx-int8/model.onnx")
i8n = ortsess(CACHE/"onnx-int8/model.onnx", 2, False)
f32 = ortsess(CACHE/"onnx/model.onnx")
cands = {"torch": lambda t: torch_e.encode(t)}
cands["onnx-int8 b64"] = lambda t: encode_with(i8, t, 64)
cands["onnx-int8 b16"] = lambda t: encode_with(i8, t, 16)
cands["onnx-int8 b8"] = lambda t: encode_with(i8, t, 8)
cands["onnx-int8 b32 nospin"] = lambda t: encode_with(i8n, t, 32)
cands["onnx b64"] = lambda t: encode_with(f32, t, 64)
cands["onnx b16"] = lambda t: encode_with(f32, t, 16)
bench(cands, 128, 3)
