from common import *
import onnx, onnxruntime as ort
from onnx import numpy_helper, helper
from onnxruntime.quantization import quantize_dynamic, QuantType
src = CACHE/"onnx/model.onnx"
m = onnx.load(str(src))
g = m.graph
inits = {i.name: i for i in g.initializer}
down = [n for n in g.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
# calibration: per-channel max |x| of each down-projection's input
m2 = onnx.load(str(src))
for n in down: m2.graph.output.append(helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
s = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
amax = [np.zeros(1536, np.float32) for _ in down]
for _, feed in batches(sample_texts(128, seed=77), 16):
    outs = s.run([n.input[0] for n in down], feed)
    mask = feed["attention_mask"].astype(bool)
    for i, o in enumerate(outs): amax[i] = np.maximum(amax[i], np.abs(o[mask]).max(axis=0))
alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
for i, n in enumerate(down):
    W = numpy_helper.to_array(inits[n.input[1]])  # [1536, 384]
    wmax = np.abs(W).max(axis=1)
    sc = (amax[i] ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)).clip(1e-2, 1e3).astype(np.float32)
    inits[n.input[1]].CopyFrom(numpy_helper.from_array((W * sc[:, None]).astype(np.float32), n.input[1]))
    g.initializer.append(numpy_helper.from_array((1 / sc).astype(np.float32), n.name + "_smooth"))
    mul_out = n.input[0] + "_smoothed"
    g.node.insert(list(g.node).index(n), helper.make_node("Mul", [n.input[0], n.name + "_smooth"], [mul_out], name=n.name + "_smooth_mul"))
    n.input[0] = mul_out
onnx.save(m, str(OUT/"sq.onnx"))
for wt, rr, tag in [(QuantType.QInt8, False, "s8"), (QuantType.QUInt8, False, "u8"), (QuantType.QInt8, True, "s8rr")]:
    quantize_dynamic(str(OUT/"sq.onnx"), str(OUT/f"sq{alpha}_{tag}.onnx"), weight_type=wt, per_channel=True, reduce_range=rr, op_types_to_quantize=["MatMul","Attention"], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
