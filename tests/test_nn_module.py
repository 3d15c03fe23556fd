"""Module, Parameter, Sequential, ModuleList: registration, names, modes, state, hooks, repr."""
from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.backend import gpu_available


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3))
        self.first = nn.Linear(3, 4)
        self.nothing = None
        self.second = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
        self.register_buffer("count", np.zeros(2))

    def forward(self, x):
        return self.second(self.first(x * self.scale))


def test_parameters_register_in_assignment_order_with_dotted_names():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "second.0.weight", "second.0.bias", "second.2.weight"]


def test_parameters_and_named_parameters_agree():
    net = Net()
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_children_modules_and_their_names():
    net = Net()
    assert [name for name, _ in net.named_children()] == ["first", "second"]
    assert [name for name, _ in net.named_modules()] == ["", "first", "second", "second.0", "second.1", "second.2"]
    assert list(net.children()) == [net.first, net.second]
    assert len(list(net.modules())) == 6


def test_none_attributes_are_allowed_and_skipped():
    net = Net()
    assert net.nothing is None
    assert net.second[2].bias is None
    net.first = None
    assert net.first is None
    assert "first.weight" not in dict(net.named_parameters())


def test_a_shared_parameter_is_listed_once():
    net = nn.Module()
    layer = nn.Linear(2, 2)
    net.a, net.b = layer, layer
    net.c = nn.Linear(2, 2)
    net.c.weight = layer.weight
    names = [name for name, _ in net.named_parameters()]
    assert names == ["a.weight", "a.bias", "c.bias"]
    assert net.num_parameters() == 8


def test_reassigning_an_attribute_replaces_the_registration():
    net = Net()
    net.first = nn.Linear(3, 5)
    assert net.first.out_features == 5
    assert [name for name, _ in net.named_children()] == ["first", "second"]
    net.scale = nn.Parameter(np.zeros(3))
    assert np.all(dict(net.named_parameters())["scale"].numpy() == 0)


def test_buffers_are_listed_and_saved_but_not_trained():
    net = Net()
    net.second.add_module("bn", nn.BatchNorm1d(2))
    assert [name for name, _ in net.named_buffers()] == [
        "count", "second.bn.running_mean", "second.bn.running_var", "second.bn.num_batches_tracked"]
    assert "count" in net.state_dict()
    assert "count" not in dict(net.named_parameters())
    assert len(list(net.buffers())) == 4


def test_assigning_to_a_buffer_name_updates_the_buffer():
    net = Net()
    net.count = np.full(2, 5.0)
    np.testing.assert_array_equal(net.state_dict()["count"], [5.0, 5.0])
    with pytest.raises(TypeError, match="buffer 'count' must be an ndarray"):
        net.count = [1, 2]


def test_wrong_types_in_parameter_and_module_slots_are_reported():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign ndarray to parameter 'scale'"):
        net.scale = np.ones(3)
    with pytest.raises(TypeError, match="cannot assign int to sub-module 'first'"):
        net.first = 3
    with pytest.raises(TypeError, match="must be a Parameter or None"):
        net.register_parameter("w", md.tensor([1.0]))


def test_forgetting_super_init_is_reported():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) before assigning attribute 'layer'"):
        Broken()


def test_missing_attribute_error_names_the_class():
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'third'"):
        Net().third  # noqa: B018


def test_train_and_eval_switch_every_module():
    net = Net()
    assert net.training and net.second[0].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.second.train(False)
    assert net.training and not net.second[1].training
    with pytest.raises(TypeError, match="mode must be a bool"):
        net.train("no")


def test_zero_grad_sets_every_grad_to_none():
    net = Net()
    net(md.tensor(np.ones((2, 3)))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_holds_copies_in_network_order():
    net = Net()
    state = net.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == ["scale", "count", "first.weight", "first.bias", "second.0.weight", "second.0.bias",
                           "second.2.weight"]
    state["scale"][0] = 99
    assert net.scale.numpy()[0] == 1  # a copy, not a view


def test_load_state_dict_copies_in_place_bit_for_bit():
    md.manual_seed(0)
    source, target = Net(), Net()
    weight = target.first.weight
    array = weight.data
    target.load_state_dict(source.state_dict())
    assert target.first.weight is weight and weight.data is array  # same objects: optimizers keep working
    x = md.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())


def test_load_state_dict_names_missing_and_unexpected_keys():
    net = Net()
    state = net.state_dict()
    del state["first.bias"]
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['first.bias'\], unexpected keys \['extra.weight'\]"):
        net.load_state_dict(state)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["first.bias"] and result.unexpected_keys == ["extra.weight"]


def test_load_state_dict_reports_a_shape_mismatch():
    state = Net().state_dict()
    state["first.weight"] = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"'first.weight' has shape \(4, 2\) in the state dict but \(4, 3\)"):
        Net().load_state_dict(state)


def test_load_state_dict_converts_to_the_parameter_dtype():
    net = Net()
    state = {name: value.astype(np.float64) for name, value in net.state_dict().items()}
    net.load_state_dict(state)
    assert net.first.weight.dtype == np.float32


def test_double_and_float_convert_in_place():
    net = Net()
    weight = net.first.weight
    net(md.tensor(np.ones((2, 3), dtype=np.float32))).sum().backward()
    assert net.double() is net
    assert net.first.weight is weight
    assert weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert net.count.dtype == np.float64
    net.float()
    assert weight.dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        net.to_dtype(np.int32)


def test_to_cpu_keeps_the_objects_and_rejects_unknown_devices():
    net = Net()
    weight = net.first.weight
    assert net.to("cpu") is net and net.first.weight is weight
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        net.to("tpu")


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a GPU")
def test_to_gpu_moves_parameters_grads_and_buffers_in_place():
    net = Net()
    net(md.tensor(np.ones((2, 3), dtype=np.float32))).sum().backward()
    weight = net.first.weight
    net.to("gpu")
    assert net.first.weight is weight and weight.device == "gpu" and md.Tensor(weight.grad).device == "gpu"
    assert md.Tensor(net.count).device == "gpu"
    assert net(md.tensor(np.ones((2, 3), dtype=np.float32)).to("gpu")).device == "gpu"
    net.to("cpu")
    assert weight.device == "cpu"


def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    net = Net()
    calls = []
    handle = net.first.register_forward_hook(lambda module, inputs, output: calls.append((module, inputs, output)))
    x = md.tensor(np.ones((2, 3), dtype=np.float32))
    net(x)
    assert len(calls) == 1
    module, inputs, output = calls[0]
    assert module is net.first and isinstance(inputs, tuple) and output.shape == (2, 4)
    handle.remove()
    net(x)
    assert len(calls) == 1


def test_forward_hook_can_replace_the_output():
    layer = nn.Linear(3, 2)
    layer.register_forward_hook(lambda module, inputs, output: output * 0)
    assert not layer(md.tensor(np.ones((1, 3), dtype=np.float32))).numpy().any()


def test_apply_visits_children_in_order_before_their_parent():
    net = Net()
    order = []
    net.apply(order.append)
    assert order == [net.first, net.second[0], net.second[1], net.second[2], net.second, net]


def test_deepcopy_and_pickle_give_an_independent_equal_model():
    net = Net()
    x = md.tensor(np.ones((2, 3), dtype=np.float32))
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert twin.first.weight is not net.first.weight
        np.testing.assert_array_equal(twin(x).numpy(), net(x).numpy())
        assert list(twin.state_dict()) == list(net.state_dict())


def test_repr_is_a_tree_with_parameter_counts():
    text = repr(Net())
    lines = text.splitlines()
    assert lines[0] == "Net(  # 47 parameters"
    assert lines[1] == "  (first): Linear(in_features=3, out_features=4, bias=True)  # 16 parameters"
    assert "  (second): Sequential(  # 28 parameters" in lines
    assert "    (1): ReLU()" in lines
    assert lines[-1] == ")"


def test_sequential_indexing_slicing_len_and_append():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and seq[1] is list(seq)[1]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    seq.append(nn.Sigmoid())
    assert [name for name, _ in seq.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="index 4 is out of range for length 4"):
        seq[4]  # noqa: B018
    with pytest.raises(TypeError, match="argument 1 is a int"):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_applies_its_modules_in_order():
    md.manual_seed(0)
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.Tanh()))
    x = md.tensor(np.ones((4, 2), dtype=np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), seq.act(seq.fc(x)).numpy())
    assert [name for name, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]


def test_module_list_registers_its_modules():
    layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.Linear(2, 1)).extend([nn.ReLU()])
    assert len(layers) == 5 and isinstance(layers[-1], nn.ReLU)
    replacement = nn.Linear(2, 2, bias=False)
    layers[1] = replacement
    assert layers[1] is replacement and [name for name, _ in layers.named_children()] == ["0", "1", "2", "3", "4"]
    assert isinstance(layers[1:3], nn.ModuleList)
    with pytest.raises(TypeError, match="expected a Module"):
        layers.append("linear")


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        nn.Module()(1)


def test_walking_a_very_deep_tree_does_not_recurse():
    root = node = nn.Sequential()
    for _ in range(2000):
        child = nn.Sequential(nn.Identity())
        node.append(child)
        node = child
    assert len(list(root.modules())) == 4001
    root.eval()
    assert not node.training
