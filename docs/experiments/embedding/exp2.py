from ovexp import *
import sys
torch_e = Embedder("all-MiniLM-L6-v2", backend="torch")
m = ov_model()
ov.save_model(m, OUT/"ov_f32.xml")
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
q = nncf.quantize(m, nncf.Dataset(calib()), model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED, subset_size=8)
ov.save_model(q, OUT/"ov_i8.xml")
q2 = nncf.quantize(ov_model(), nncf.Dataset(calib()), model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED, subset_size=8,
    advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))
ov.save_model(q2, OUT/"ov_i8_of.xml")
cands = {"torch": lambda t: torch_e.encode(t)}
f = compiled(m); cands["ov f32"] = lambda t: encode_with(f, t, 64)
g = compiled(q); cands["ov int8"] = lambda t: encode_with(g, t, 64)
h = compiled(q2); cands["ov int8 overflowfix"] = lambda t: encode_with(h, t, 64)
bench(cands, 128, 3)
