from common import *
import torch, onnx, logging
from sentence_transformers import SentenceTransformer
from onnxruntime.transformers.optimizer import optimize_model
from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxruntime.quantization import quantize_dynamic, QuantType
raw = OUT/"raw.onnx"
if not raw.exists():
    st = SentenceTransformer(str(MP), device="cpu"); tr = st[0].auto_model.eval(); tr.set_attn_implementation("eager")
    enc = MeanPooledEncoder(tr).eval(); s = TOK(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.onnx.export(enc, tuple(s[n] for n in ONNX_INPUTS), str(raw), dynamo=False, input_names=list(ONNX_INPUTS), output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in ONNX_INPUTS}, "sentence_embedding": {0: "batch"}}, opset_version=17)
fo = FusionOptions("bert"); fo.enable_attention = False
m = optimize_model(str(raw), model_type="bert", num_heads=12, hidden_size=384, optimization_options=fo)
m.save_model_to_file(str(OUT/"noattn.onnx"))
for bits, bs in [(8, 32), (8, 128), (4, 32)]:
    q = MatMulNBitsQuantizer(onnx.load(str(OUT/"noattn.onnx")), bits=bits, block_size=bs, is_symmetric=True, accuracy_level=4)
    q.process(); q.model.save_model_to_file(str(OUT/f"nbits{bits}_{bs}.onnx"))
    q = MatMulNBitsQuantizer(onnx.load(str(CACHE/"onnx/model.onnx")), bits=bits, block_size=bs, is_symmetric=True, accuracy_level=4)
    q.process(); q.model.save_model_to_file(str(OUT/f"fused_nbits{bits}_{bs}.onnx"))
quantize_dynamic(str(CACHE/"onnx/model.onnx"), str(OUT/"dyn_s8_all.onnx"), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul","Attention"], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
quantize_dynamic(str(OUT/"noattn.onnx"), str(OUT/"noattn_dyn_u8.onnx"), weight_type=QuantType.QUInt8, per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=[n.name for n in onnx.load(str(OUT/"noattn.onnx")).graph.node if n.op_type=="MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
