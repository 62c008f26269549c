from common import *
import torch, openvino as ov, nncf
from sentence_transformers import SentenceTransformer
core = ov.Core()
def ov_model(attn="sdpa"):
    st = SentenceTransformer(str(MP), device="cpu")
    tr = st[0].auto_model.eval(); tr.set_attn_implementation(attn)
    enc = MeanPooledEncoder(tr).eval()
    s = TOK(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    with torch.no_grad():
        m = ov.convert_model(enc, example_input={n: s[n] for n in ONNX_INPUTS},
                             input=[(n, ov.PartialShape([-1, -1]), ov.Type.i64) for n in ONNX_INPUTS])
    return m
def compiled(m, hint="LATENCY", **kw):
    c = core.compile_model(m, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": 2, **kw})
    req = c.create_infer_request()
    return lambda feed: req.infer(feed)[0].copy()
def calib(n=128, bs=16):
    t = sample_texts(n, seed=77)
    return [feed for _, feed in batches(t, bs)]
