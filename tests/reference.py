"""An independent v1 ResNet written straight from docs/v1_reference.md with Paddle functional ops.

It shares nothing with the package: it reads the raw parameter files itself and hard-codes
the topology, so a mistake in resnet.spec, resnet.params or resnet.network shows up as a
mismatch instead of being repeated here.
"""
import os

import numpy as np
import paddle
import paddle.nn.functional as F

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def read_raw(model_dir, name):
    """The float32 values of `_<name>` after the 16-byte header, no validation."""
    return np.fromfile(os.path.join(model_dir, f"_{name}"), dtype="<f4", offset=16)


class Reference:
    def __init__(self, model_dir, layer_num):
        self.dir, self.layer_num = model_dir, layer_num

    def _conv(self, x, name, cout, k, stride, pad):
        cin = x.shape[1]
        w = read_raw(self.dir, f"{name}.w0").reshape(cout, cin, k, k)
        return F.conv2d(x, paddle.to_tensor(w), stride=stride, padding=pad)

    def _bn(self, x, name, relu):
        g, m, v, b = (read_raw(self.dir, f"{name}.{s}") for s in ("w0", "w1", "w2", "wbias"))
        scale = g / np.sqrt(np.maximum(v, 0) + 1e-5)
        y = (x - paddle.to_tensor(m).reshape([1, -1, 1, 1])) * paddle.to_tensor(scale).reshape(
            [1, -1, 1, 1]) + paddle.to_tensor(b).reshape([1, -1, 1, 1])
        return F.relu(y) if relu else y

    def forward(self, x: np.ndarray) -> dict:
        """Every layer's output, by v1 name, for a (N, 3, 224, 224) BGR mean-subtracted batch."""
        out = {}
        with paddle.no_grad():
            x = paddle.to_tensor(x)
            out["input"] = x
            out["conv1_conv"] = c = self._conv(x, "conv1_conv", 64, 7, 2, 3)
            out["conv1_bn"] = c = self._bn(c, "conv1_bn", True)
            # max pool 3x3/2, pad 0, CEIL mode: pad right/bottom with -inf by hand
            h = c.shape[2]
            extra = (int(np.ceil((h - 3) / 2)) * 2 + 3) - h
            padded = F.pad(c, [0, extra, 0, extra], value=-np.inf)
            out["pool1"] = x = F.max_pool2d(padded, 3, 2, 0)
            widths = ((64, 256), (128, 512), (256, 1024), (512, 2048))
            for stage, (n, (mid, wide)) in enumerate(zip(BLOCKS[self.layer_num], widths), 2):
                for j in range(1, n + 1):
                    p = f"res{stage}_{j}"
                    s = 2 if (j == 1 and stage != 2) else 1
                    if j == 1:
                        out[f"{p}_branch1_conv"] = sc = self._conv(x, f"{p}_branch1_conv", wide, 1, s, 0)
                        out[f"{p}_branch1_bn"] = sc = self._bn(sc, f"{p}_branch1_bn", False)
                    else:
                        sc = x
                    y = x
                    for br, cout, k, st, pad, relu in (("2a", mid, 1, s, 0, True),
                                                       ("2b", mid, 3, 1, 1, True),
                                                       ("2c", wide, 1, 1, 0, False)):
                        out[f"{p}_branch{br}_conv"] = y = self._conv(y, f"{p}_branch{br}_conv", cout, k, st, pad)
                        out[f"{p}_branch{br}_bn"] = y = self._bn(y, f"{p}_branch{br}_bn", relu)
                    out[f"{p}_addto"] = x = F.relu(sc + y)
            out["avgpool"] = x = F.avg_pool2d(x, 7, 1)
            w = read_raw(self.dir, "output.w0").reshape(2048, 1000)
            b = read_raw(self.dir, "output.wbias")
            logits = paddle.matmul(x.reshape([x.shape[0], -1]), paddle.to_tensor(w)) + paddle.to_tensor(b)
            out["output"] = F.softmax(logits, axis=-1)
        return {k: v.numpy() for k, v in out.items()}


def rel_err(a, b) -> float:
    """max|a - b| / max|b|: relative to the layer's scale, robust to values near zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
