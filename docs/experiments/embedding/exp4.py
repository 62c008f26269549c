from common import *
import onnxruntime as ort
torch_e = Embedder("all-MiniLM-L6-v2", backend="torch")
def ortsess(path, spin):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    if not spin: so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feed: s.run(None, feed)[0]
p = CACHE/"onnx-int8/model.onnx"
a, b = ortsess(p, True), ortsess(p, False)
cands = {"torch": lambda t: torch_e.encode(t),
 "int8 spin b64": lambda t: encode_with(a, t, 64), "int8 nospin b64": lambda t: encode_with(b, t, 64),
 "int8 nospin b32": lambda t: encode_with(b, t, 32), "int8 nospin b16": lambda t: encode_with(b, t, 16),
 "int8 spin b16": lambda t: encode_with(a, t, 16)}
bench(cands, 128, 4)
