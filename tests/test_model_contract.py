"""The contract every registered architecture keeps, parametrized from the registry (ARCHS).

The spec is the one description: its parameter files, layer table, diagram and executor all
agree with it, and its family's declarations (default features, clusters) name its layers.
(Exactness against independent computations: test_equivalence.py for v1, test_convert.py
for v1.5, test_vgg.py for VGG.)
"""
import math

import numpy as np
import pytest

import resnet
from resnet.introspect.diagram import to_dot
from resnet.introspect.table import layer_table, param_counts
from resnet.modelio import params
from resnet.models import ARCHS, build_arch, select
from resnet.models.ops import OPS

ARCH_NAMES = ARCHS.names()


def test_registry_names_every_family_and_the_v1_spellings():
    names = {row["name"] for row in resnet.list_models()}
    for depth in (18, 34, 50, 101, 152):
        for variant, name in (("v1", f"resnet{depth}_v1"), ("v1.5", f"resnet{depth}"),
                              ("v1-pad1", f"resnet{depth}_v1_pad1"),
                              ("v2", f"resnet{depth}_v2")):
            assert name in names and resnet.build(depth, variant).arch == name
    assert {"vgg16", "vgg16_bn", "vgg19", "vgg19_bn"} <= names
    assert {"inception_v3", "inception_v3_keras", "inception_v3_paddle",
            "inception_v3_fid"} <= names
    assert {"xception", "legacy_xception"} <= names
    assert select().arch == "resnet50_v1"  # the v1 zoo's ResNet-50: the default
    with pytest.raises(resnet.ResnetError, match="unsupported layer_num 42"):
        resnet.build(42, "v1")
    with pytest.raises(resnet.ResnetError, match="unsupported variant 'v9'"):
        resnet.build(50, "v9")
    with pytest.raises(resnet.ResnetError, match=r"unknown architecture 'vgg61'.*vgg16"):
        build_arch("vgg61")
    with pytest.raises(resnet.ResnetError, match="--arch names the whole network"):
        select("vgg16", layer_num=50)


def test_list_models_rows_are_complete():
    rows = {r["name"]: r for r in resnet.list_models()}
    assert rows["vgg16"]["params"] == 138_357_544 and rows["vgg19"]["params"] == 143_667_240
    # BN variants: learnable 138,365,992 / 143,678,248 plus the moving statistics
    assert rows["vgg16_bn"]["params"] == 138_365_992 + 8_448  # = Gluon's count
    assert rows["vgg19_bn"]["params"] == 143_678_248 + 11_008
    assert rows["resnet50_v1"]["default_features"] == ["res5_3_branch2c_conv",
                                                       "res5_3_branch2c_bn"]
    assert rows["vgg16"]["default_features"] == ["fc7"]
    # Inception v3: Gluon's count (conv weights, four BN vectors, fc), at 299
    assert rows["inception_v3"]["params"] == 23_869_000
    assert rows["inception_v3"]["default_features"] == ["avgpool"]
    # the FID network: 1008 classes (its fc has 8 x 2049 more values), pool3
    assert rows["inception_v3_fid"]["params"] == 23_869_000 + 8 * 2049
    assert rows["inception_v3_fid"]["default_features"] == ["pool3"]
    # Xception: Keras' count (conv and separable kernels, four BN vectors, fc)
    assert rows["xception"]["params"] == rows["legacy_xception"]["params"] == 22_910_480
    assert rows["xception"]["default_features"] == ["avgpool"]
    assert all(r["classes"] == (1008 if r["name"] == "inception_v3_fid" else 1000)
               for r in rows.values())
    assert all(r["input_size"] == (299 if r["family"] in ("inception", "xception") else 224)
               for r in rows.values())


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_model_contract(name):
    spec = build_arch(name)
    assert spec.arch == name and spec.family is ARCHS[name].family
    names = spec.names
    assert len(set(names)) == len(names) and names[0] == "input" and names[-1] == "output"
    for node in spec:
        assert node.op in OPS, node.name
        assert all(src in spec and names.index(src) < names.index(node.name)
                   for src in node.inputs), node.name  # inputs come earlier
        if node.inputs:  # every shape is what the op infers from its inputs
            assert node.operation.infer(node.attrs, [spec[i].shape for i in node.inputs]) \
                == node.shape, node.name
    assert spec.default_features() and all(n in spec for n in spec.default_features())
    # parameter files, table and diagram read the same spec
    files = spec.param_files()
    assert len({f for f, _ in files}) == len(files)
    counts = param_counts(spec)
    assert counts.total == sum(math.prod(shape) for _, shape in files) == spec.param_count()
    assert [r.name for r in layer_table(spec)] == names
    dot = to_dot(spec)
    assert all(f"<b>{n}</b>" in dot for n in names)  # a node per layer, labelled
    clusters = {spec.family.cluster_of(n) for n in names} - {None}
    assert len(clusters) >= 4 and all(f"cluster_{c}" in dot for c in clusters)
    # the executor computes every layer at the spec's shape (VGG: small constant weights, as
    # drawing 138M random values costs seconds; its values are checked in test_vgg*.py)
    values = ({f: np.full(shape, 1e-3, np.float32) for f, shape in files}
              if spec.family.name == "vgg" else params.random_params(spec, seed=len(names)))
    from resnet.runtime.network import Network

    size = spec.input_size
    out = Network(spec).load_params(values).run(
        np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32), names)
    for n in names:
        assert out[n].shape == (1, *spec[n].shape), n
        assert np.isfinite(out[n]).all(), n
    np.testing.assert_allclose(out["output"].sum(), 1.0, rtol=1e-5)


#: fingerprints of the ResNet-50 specs as the engine cache keys and parameter files read them
#: (depth, variant, every node's name, op, inputs, attributes and shape, every parameter
#: file), taken before the model-zoo core was written: the refactor changed none of them
FINGERPRINTS = {"v1": "841a29948ea6786b", "v1.5": "71f0775929ab9f73",
                "v1-pad1": "f10245aca0014820", "v2": "087a631911ac09b0"}


@pytest.mark.parametrize("variant", FINGERPRINTS)
def test_resnet_specs_keep_their_cache_keys_and_files(variant):
    import hashlib
    import json

    s = resnet.build(50, variant)
    nodes = [(n.name, n.op, n.inputs, sorted(n.attrs.items()), n.shape) for n in s]
    blob = json.dumps([s.layer_num, s.variant, repr(nodes), s.param_files()])
    assert hashlib.sha256(blob.encode()).hexdigest()[:16] == FINGERPRINTS[variant]
