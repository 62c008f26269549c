from common import *
import onnxruntime as ort
torch_e = Embedder("all-MiniLM-L6-v2", backend="torch")
def ortsess(path):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feed: s.run(None, feed)[0]
cands = {"torch": lambda t: torch_e.encode(t)}
for name, p in [("onnx-int8", CACHE/"onnx-int8/model.onnx"), ("onnx", CACHE/"onnx/model.onnx")] + [(f, OUT/f"{f}.onnx") for f in sys.argv[1].split(",")]:
    r = ortsess(p); cands[name] = (lambda r: lambda t: encode_with(r, t, 64))(r)
bench(cands, 128, int(os.environ.get("ROUNDS", 3)))
