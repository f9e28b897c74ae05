"""The contract every registered model (variant x depth) keeps, parametrized from MODELS.

The spec is the one description: its parameter files, layer table, diagram and executor all
agree with it. (Exactness against independent computations is in test_equivalence.py for v1
and test_convert.py for v1.5.)
"""
import math

import numpy as np
import pytest

import resnet
from resnet.introspect.diagram import to_dot
from resnet.introspect.table import layer_table, param_counts
from resnet.modelio import params
from resnet.models.graph import block_of
from resnet.models.ops import OPS

MODELS = resnet.list_models()


def test_registry_lists_every_family_and_depth():
    assert ("v1", 50) in MODELS and ("v1.5", 18) in MODELS
    with pytest.raises(resnet.ResnetError, match="unsupported layer_num 42"):
        resnet.build(42, "v1")
    with pytest.raises(resnet.ResnetError, match="unsupported variant 'v9'"):
        resnet.build(50, "v9")


@pytest.mark.parametrize("variant,depth", MODELS)
def test_model_contract(variant, depth):
    spec = resnet.build(depth, variant)
    assert (spec.layer_num, spec.variant) == (depth, variant)
    names = spec.names
    assert len(set(names)) == len(names) and names[0] == "input" and names[-1] == "output"
    for node in spec:
        assert node.op in OPS, node.name
        assert all(src in spec and names.index(src) < names.index(node.name)
                   for src in node.inputs), node.name  # inputs come earlier
    assert all(n in spec for n in spec.default_features())
    # parameter files, table and diagram read the same spec
    files = spec.param_files()
    assert len({f for f, _ in files}) == len(files)
    counts = param_counts(spec)
    assert counts.total == sum(math.prod(shape) for _, shape in files)
    assert [r.name for r in layer_table(spec)] == names
    dot = to_dot(spec)
    assert all(f"<b>{n}</b>" in dot for n in names)  # a node per layer, labelled
    assert {block_of(n)[0] for n in names if block_of(n)} == {2, 3, 4, 5}
    # the executor computes every layer at the spec's shape
    values = params.random_params(spec, seed=depth)
    from resnet.runtime.network import Network

    out = Network(spec).load_params(values).run(
        np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32), names)
    for n in names:
        assert out[n].shape == (1, *spec[n].shape), n
    np.testing.assert_allclose(out["output"].sum(), 1.0, rtol=1e-5)
