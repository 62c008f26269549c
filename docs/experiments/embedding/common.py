import sys, time, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import numpy as np
from pathlib import Path
from streams.bench.embedding import sample_texts, agreement
from streams.embedding.embedder import Embedder, default_model_path, ONNX_INPUTS
from streams.embedding.export_onnx import MeanPooledEncoder
from transformers import AutoTokenizer

MP = default_model_path("all-MiniLM-L6-v2")
TOK = AutoTokenizer.from_pretrained(str(MP))
CACHE = Path.home()/".cache/streams/models/all-MiniLM-L6-v2-e6eaedd7faf5"
OUT = Path("/tmp/exp/models"); OUT.mkdir(parents=True, exist_ok=True)

def batches(texts, bs, sort=True):
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i])) if sort else list(range(len(texts)))
    for s in range(0, len(texts), bs):
        picked = order[s:s+bs]
        tok = TOK([texts[i] for i in picked], padding=True, truncation=True, max_length=256, return_tensors="np")
        yield picked, {n: tok[n].astype(np.int64) for n in ONNX_INPUTS}

def encode_with(run, texts, bs=64, sort=True):
    out = np.empty((len(texts), 384), np.float32)
    for picked, feed in batches(texts, bs, sort):
        out[picked] = run(feed)
    return out

def timeit(fn, texts):
    w, c = time.perf_counter(), time.process_time()
    v = fn(texts)
    w, c = time.perf_counter()-w, time.process_time()-c
    return v, len(texts)/w, len(texts)/c

def bench(cands, n=128, rounds=3):
    texts = sample_texts(n)
    res = {k: ([], []) for k in cands}
    vecs = {}
    for f in cands.values(): f(texts[:8])
    for r in range(rounds):
        for k, f in cands.items():
            v, w, c = timeit(f, texts)
            vecs[k] = np.asarray(v); res[k][0].append(w); res[k][1].append(c)
    ref = vecs[next(iter(cands))]
    t = np.median(res[next(iter(cands))][0]); tc = np.median(res[next(iter(cands))][1])
    print(open('/proc/loadavg').read().strip())
    for k in cands:
        a = agreement(vecs[k], ref)
        print(f"{k:28s} {np.median(res[k][0]):6.1f}/s x{np.median(res[k][0])/t:4.2f}  cpu {np.median(res[k][1]):6.1f}/cpu-s x{np.median(res[k][1])/tc:4.2f}  min {a['min_cosine']:.4f} mean {a['mean_cosine']:.4f}  runs {[round(x,1) for x in res[k][0]]}", flush=True)
