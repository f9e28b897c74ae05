"""Mean files: the Python 2 cPickle form, .npy, defaults, and refusal of unsafe pickles."""
import pickle
import pickletools

import numpy as np
import pytest

from resnet.errors import ResnetError
from resnet.modelio.mean import DEFAULT_BGR, load_mean, write_v1_mean


def test_python2_mean_meta_round_trip(tmp_path):
    path = str(tmp_path / "mean.meta")
    mean = np.random.default_rng(0).uniform(0, 255, (3, 224, 224)).astype(np.float32)
    write_v1_mean(path, mean)
    raw = open(path, "rb").read()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ("PROTO", 2)
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops  # as numpy 1 under Python 2
    assert ("SHORT_BINSTRING", "data_mean") in ops  # Python 2 str keys
    assert any(name == "BINSTRING" and len(arg) == mean.nbytes for name, arg in ops)
    with pytest.raises(UnicodeDecodeError):  # plain Python 3 loading fails, as with real files
        pickle.loads(raw)
    np.testing.assert_array_equal(load_mean(path), mean)


def test_npy_and_per_channel(tmp_path):
    full = np.full((3, 224, 224), 7.0, np.float32)
    np.save(tmp_path / "m.npy", full)
    np.testing.assert_array_equal(load_mean(str(tmp_path / "m.npy")), full)
    np.save(tmp_path / "c.npy", np.array([1.0, 2.0, 3.0]))
    assert load_mean(str(tmp_path / "c.npy")).shape == (3, 1, 1)


def test_default_is_bgr_values():
    np.testing.assert_allclose(load_mean(None).ravel(), [103.939, 116.779, 123.68], rtol=1e-6)
    assert DEFAULT_BGR[0] < DEFAULT_BGR[2]  # blue first


def test_forbidden_global_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.meta"
    path.write_bytes(pickle.dumps({"data_mean": Evil()}, protocol=2))
    with pytest.raises(ResnetError, match=r"evil.meta: unsafe pickle: refused global "
                                          r"(posix|os)\.system; only numpy arrays are allowed"):
        load_mean(str(path))
    assert not marker.exists()


def test_wrong_shape_and_garbage(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 100, 100), np.float32))
    with pytest.raises(ResnetError, match=r"bad.npy: mean has 30000 values .* expected 3x224x224"):
        load_mean(str(tmp_path / "bad.npy"))
    (tmp_path / "junk.meta").write_bytes(b"not a pickle at all")
    with pytest.raises(ResnetError, match="junk.meta: not a valid pickle"):
        load_mean(str(tmp_path / "junk.meta"))
    (tmp_path / "dict.meta").write_bytes(pickle.dumps({"other": 1}, protocol=2))
    with pytest.raises(ResnetError, match="dict.meta: not a v1 mean file"):
        load_mean(str(tmp_path / "dict.meta"))
    with pytest.raises(ResnetError, match="missing.meta: mean file not found"):
        load_mean(str(tmp_path / "missing.meta"))
