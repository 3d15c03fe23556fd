"""Chapter 05 (Gil's skips to the head): the three networks, PyTorch as their twin, the smoke preset, resume, the check script."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.models.skip_to_head import CONNECTIONS, ConvReLU, SkipToHeadNet, pool_positions

ROOT = Path(__file__).resolve().parents[1]


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_net(connection, depth=3, kernels=2, seed=0):
    """A float64 net small enough for finite differences: 8x8 inputs, 3 classes, no dropout."""
    md.manual_seed(seed)
    return SkipToHeadNet(depth, kernels, connection, num_classes=3, image_size=8, hidden=(6, 5), dropout=0.0).double()


def images(n=2, size=8, seed=0):
    return md.tensor(np.random.default_rng(seed).random((n, 3, size, size)), requires_grad=True)


# ---------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, expected", [(12, [4, 8, 12]), (69, [23, 46, 69]), (99, [33, 66, 99]),
                                             (120, [40, 80, 120])])
def test_max_pools_sit_where_gil_put_them(depth, expected):
    assert pool_positions(depth) == expected
    net = SkipToHeadNet(depth, 3, "baseline")
    kinds = [type(m).__name__ for m in net.body.layers]
    convs_before_pool = [kinds[:i].count("ConvReLU") for i, k in enumerate(kinds) if k == "MaxPool2d"]
    assert convs_before_pool == expected
    # Batch normalisation right after every max pool, and nowhere else.
    assert [kinds[i + 1] for i, k in enumerate(kinds) if k == "MaxPool2d"] == ["BatchNorm2d"] * 3
    assert kinds.count("BatchNorm2d") == 3 and kinds.count("ConvReLU") == depth


@pytest.mark.parametrize("connection, features", [("baseline", 3 * 16), ("concat", 3 * 13 * 16), ("sum", 3 * 16)])
def test_head_sees_4x4_maps_of_the_right_width(connection, features):
    net = SkipToHeadNet(12, 3, connection)
    assert net.head_features == features
    assert net.fc_0.weight.shape == (2048, features)
    assert net.fc_1.weight.shape == (1024, 2048) and net.logits.weight.shape == (10, 1024)
    out = net(md.tensor(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)))
    assert out.shape == (2, 10)


def test_every_connection_has_the_same_parameter_names():
    names = [[n for n, _ in SkipToHeadNet(12, 3, c).named_parameters()] for c in CONNECTIONS]
    assert all(n == names[0] for n in names)
    assert names[0][0] == "body.layers.0.conv.weight" and names[0][-1] == "logits.bias"


def test_keras_initialisation_glorot_uniform_weights_zero_biases():
    md.manual_seed(0)
    net = SkipToHeadNet(12, 16, "concat")
    w = net.body.layers[1].conv.weight.numpy()  # 16 -> 16 channels, 3x3: fan_in = fan_out = 144
    limit = np.sqrt(6 / (144 + 144))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    assert not net.body.layers[1].conv.bias.numpy().any() and not net.fc_0.bias.numpy().any()
    bn = net.body.layers[5]
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3 and bn.momentum == 0.01


def test_concat_features_are_the_head_then_every_layer_pooled_to_4x4():
    net = SkipToHeadNet(6, 2, "concat", image_size=32)
    x = md.tensor(np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32))
    with md.no_grad():
        features = net.body(x).numpy()
        z, outputs = x, []
        for layer in net.body.layers:
            z = layer(z)
            if isinstance(layer, ConvReLU):
                outputs.append(z.numpy())
    assert features.shape == (2, 2 * 7, 4, 4)
    np.testing.assert_array_equal(features[:, :2], z.numpy())  # z_head: the third pool's BN output
    for l, h in enumerate(outputs):
        k = h.shape[-1] // 4
        pooled = h.reshape(2, 2, 4, k, 4, k).max(axis=(3, 5))
        np.testing.assert_array_equal(features[:, 2 + 2 * l: 4 + 2 * l], pooled)


def test_sum_features_add_every_pooled_layer_to_the_head_and_baseline_adds_none():
    x = md.tensor(np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32))
    md.manual_seed(3)
    summed = SkipToHeadNet(6, 2, "sum")
    md.manual_seed(3)
    plain = SkipToHeadNet(6, 2, "baseline")
    plain.load_state_dict(summed.state_dict())
    with md.no_grad():
        head = plain.body(x).numpy()
        extra = 0
        z = x
        for layer in summed.body.layers:
            z = layer(z)
            if isinstance(layer, ConvReLU):
                k = z.shape[-1] // 4
                extra = extra + z.numpy().reshape(2, 2, 4, k, 4, k).max(axis=(3, 5))
        np.testing.assert_allclose(summed.body(x).numpy(), head + extra, rtol=1e-6)
        np.testing.assert_array_equal(head, z.numpy())  # the baseline's head sees z_head alone


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_whole_network_gradcheck(connection):
    net = small_net(connection)
    x = images()
    assert md.gradcheck(lambda inp, *_: net(inp), [x, *net.parameters()])


def test_only_the_skips_reach_the_first_layer_when_a_later_layer_is_silent():
    """With the second conv's weights and bias at zero, its ReLU passes no gradient: the chain is cut."""
    grads = {}
    for connection in CONNECTIONS:
        net = small_net(connection, depth=6)
        net.body.layers[1].conv.weight.data[...] = 0
        net.body.layers[1].conv.bias.data[...] = 0
        net(images()).sum().backward()
        grads[connection] = np.abs(net.body.layers[0].conv.weight.grad).sum()
    assert grads["baseline"] == 0
    assert grads["concat"] > 0 and grads["sum"] > 0


def test_errors_name_the_model_and_the_values():
    with pytest.raises(ValueError, match="SkipToHeadNet: connection must be one of"):
        SkipToHeadNet(12, 3, "dense")
    with pytest.raises(ValueError, match="pool_positions: depth must be a positive multiple of num_pools=3, got 13"):
        SkipToHeadNet(13, 3)
    with pytest.raises(ValueError, match="SkipToHeadNet: kernels must be a positive int, got 0"):
        SkipToHeadNet(12, 0)
    with pytest.raises(ValueError, match="SkipToHeadNet: image_size 28 must be divisible by 2 \\*\\* 3"):
        SkipToHeadNet(12, 3, image_size=28)


def _torch_twin(torch, net):
    """Gil's network written directly in PyTorch, with ``net``'s weights copied in."""
    tnn, TF = torch.nn, torch.nn.functional
    convs = [m.conv for m in net.body.layers if isinstance(m, ConvReLU)]
    bns = [m for m in net.body.layers if isinstance(m, nn.BatchNorm2d)]
    pools = pool_positions(net.depth)

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            self.convs = tnn.ModuleList([tnn.Conv2d(c.in_channels, c.out_channels, 3, padding=1) for c in convs])
            self.bns = tnn.ModuleList([tnn.BatchNorm2d(b.num_features, eps=1e-3, momentum=0.01) for b in bns])
            self.fc_0 = tnn.Linear(*net.fc_0.weight.shape[::-1])
            self.fc_1 = tnn.Linear(*net.fc_1.weight.shape[::-1])
            self.logits = tnn.Linear(*net.logits.weight.shape[::-1])

        def forward(self, x):
            skips, s = [], 0
            for l, conv in enumerate(self.convs, 1):
                x = torch.relu(conv(x))
                skips.append(x)
                if l in pools:
                    x, s = self.bns[s](TF.max_pool2d(x, 2)), s + 1
            pooled = [TF.max_pool2d(z, z.shape[-1] // x.shape[-1]) for z in skips]
            if net.connection == "concat":
                x = torch.cat([x] + pooled, 1)
            elif net.connection == "sum":
                x = x + sum(pooled)
            elif net.connection == "sum2k":  # the 2K reading: the summed map beside z_head
                x = torch.cat([x, sum(pooled)], 1)
            x = torch.relu(self.fc_0(x.flatten(1)))
            return self.logits(torch.relu(self.fc_1(x)))

    twin = Twin().double()
    pairs = [(c, t) for c, t in zip(convs, twin.convs)] + [(b, t) for b, t in zip(bns, twin.bns)]
    pairs += [(net.fc_0, twin.fc_0), (net.fc_1, twin.fc_1), (net.logits, twin.logits)]
    with torch.no_grad():
        for ours, theirs in pairs:
            theirs.weight.copy_(torch.from_numpy(ours.weight.numpy()))
            theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))
    return twin, pairs


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_forward_and_backward_match_pytorch(torch, connection):
    net = small_net(connection, depth=6, kernels=3)
    twin, pairs = _torch_twin(torch, net)
    x_np = np.random.default_rng(4).random((4, 3, 8, 8))
    x, tx = md.tensor(x_np.copy(), requires_grad=True), torch.from_numpy(x_np.copy()).requires_grad_(True)
    y, ty = net(x), twin(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(5).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------
# The chapter
# ---------------------------------------------------------------------------------------

def test_smoke_preset_runs_the_quick_networks_and_writes_results(tmp_path):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    chapter.EXPERIMENT.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["variants"]) == chapter.SMOKE_VARIANTS
    assert results["dataset"]["name"] == "bundled"
    assert results["dataset"]["normalisation"].startswith("none")
    assert results["config"]["optimizer"] == "sgd" and results["config"]["momentum"] == 0.0
    for name, entry in results["variants"].items():
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        (record,) = entry["history"]
        assert {"train_acc", "test_acc", "test_loss"} <= set(record)  # the test curve of Gil's Figure 4
        flow = entry["gradient_flow"][0]
        depth = int(name.split("_")[1].split("x")[0])
        assert list(flow)[0] == "body.layers.0.conv" and list(flow)[-1] == "logits"
        assert len(flow) == depth + 3 + 3  # every conv, the three BN gammas, the three FC layers
        run = entry["runs"]["0"]
        assert run["chain_rule_at_init"]["labels"][:2] == ["input", "conv1"]
        assert run["chain_rule_at_init"]["labels"][-3:] == ["fc_0", "fc_1", "logits"]
    # At initialisation the deep baseline's gradient has all but vanished at its first layer;
    # the direct paths keep it within two orders of magnitude of the head's.
    ratio = {n: v["runs"]["0"]["chain_rule_at_init"]["grad_norms"] for n, v in results["variants"].items()}
    ratio = {n: g[1] / g[-1] for n, g in ratio.items()}
    assert ratio["baseline_69x3"] < 1e-4
    assert ratio["concat_69x3"] > 1e-2 and ratio["sum_69x3"] > 1e-2
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    table = (tmp_path / "table.txt").read_text()
    assert "Gil test %" in table and "62.5" in table  # Table 1's concat 69x3 beside ours
    # The per-block tables: every block's own Jacobian, the skip path apart.
    rows = results["variants"]["concat_69x3"]["runs"]["0"]["blocks_at_init"]
    convs = [r for r in rows if r["kind"] == "ConvReLU"]
    assert len(convs) == 69 and all(r["rms"] > 0 and r["top"] >= r["rms"] * 0.999 for r in convs)
    assert all(r["skip_grad_norm"] > 0 for r in convs[:-1] if r["chain_grad_norm"] is not None)
    base = results["variants"]["baseline_69x3"]["runs"]["0"]["blocks_at_init"]
    assert all(r["skip_grad_norm"] < 1e-6 * max(r["grad_norm"], 1e-300) + 1e-300 for r in base
               if r["skip_grad_norm"] is not None)  # a plain chain: no skip, to rounding
    for name in ("claims.md", "grid.md", "comparisons.md", "blocks_concat_69x3_at_init.md"):
        assert (tmp_path / name).read_text().startswith("| ")


def test_interrupted_run_resumes_without_redoing_finished_variants(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    real_run = chapter.EXPERIMENT.run_variant
    calls = []

    def interrupted(ctx):
        calls.append(ctx.variant)
        if ctx.variant == "concat_12x3":
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second network
        return real_run(ctx)

    args = ["--preset", "smoke", "--out", str(tmp_path), "--no-progress", "--variants", "baseline_12x3", "concat_12x3"]
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", interrupted)
    with pytest.raises(KeyboardInterrupt):
        chapter.EXPERIMENT.main(args)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["variants"]) == ["baseline_12x3"]

    calls.clear()
    monkeypatch.setattr(chapter.EXPERIMENT, "run_variant", lambda ctx: calls.append(ctx.variant) or real_run(ctx))
    chapter.EXPERIMENT.main(args + ["--resume"])
    assert calls == ["concat_12x3"]
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert resumed["variants"]["baseline_12x3"]["runs"] == saved["variants"]["baseline_12x3"]["runs"]  # not run again


def test_the_grid_is_gils_and_table_1_is_complete():
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    grid = {n: v for n, v in chapter.VARIANTS.items() if v[0] != "sum2k"}  # sum2k: the other reading, off the grid
    assert len(grid) == 27 and len(chapter.VARIANTS) == 27 + 9
    assert chapter.EXPERIMENT.default_variants["paper"] == list(grid)
    assert {d for c, d, k in chapter.VARIANTS.values() if c == "baseline"} == {12, 69, 99}
    assert {d for c, d, k in chapter.VARIANTS.values() if c != "baseline"} == {12, 69, 120}
    assert len(chapter.PAPER) == 14 and set(chapter.PAPER) <= set(chapter.VARIANTS)
    assert chapter.PAPER["baseline_69x3"] == (0.101, 0.099) and chapter.PAPER["concat_120x3"] == (0.782, 0.666)
    paper = chapter.PRESETS["paper"]
    assert (paper["batch_size"], paper["epochs"], paper["lr"], paper["momentum"]) == (500, 200, 0.01, 0.0)


def test_comparisons_call_a_difference_within_two_standard_errors_noise():
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    a, b = {"mean": 0.60, "std": 0.01, "n": 3}, {"mean": 0.50, "std": 0.01, "n": 3}
    assert chapter.compare(a, b)["verdict"] == "a > b"
    assert chapter.compare(b, a)["verdict"] == "b > a"
    noisy = {"mean": 0.55, "std": 0.10, "n": 3}
    assert chapter.compare(noisy, b)["verdict"] == "within noise"
    assert chapter.compare({"mean": 0.9, "std": 0.0, "n": 1}, b)["verdict"] == "within noise"  # one seed: no call
    assert chapter.compare(a, b)["stderr"] == pytest.approx((2 * 0.01 ** 2 / 3) ** 0.5)


def test_sum2k_is_the_other_reading_of_one_additional_map():
    x = md.tensor(np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32))
    md.manual_seed(3)
    wide = SkipToHeadNet(6, 2, "sum2k")
    md.manual_seed(3)
    summed = SkipToHeadNet(6, 2, "sum")
    assert wide.head_features == 2 * summed.head_features  # 2K channels against K
    with md.no_grad():
        features = wide.body(x).numpy()  # [z_head, P_1 z_1, ..., P_6 z_6]
    z, pooled = features[:, :2], features[:, 2:].reshape(2, 6, 2, 4, 4)
    np.testing.assert_allclose(z + pooled.sum(axis=1), summed.body(x).numpy(), rtol=1e-5, atol=1e-6)


COMMITTED = ROOT / "docs" / "figures" / "05" / "results.json"


def test_from_results_regenerates_the_committed_run_s_figures_tables_and_ledger(tmp_path):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    chapter.EXPERIMENT.main(["--from-results", str(COMMITTED), "--out", str(tmp_path)])
    committed = COMMITTED.parent
    for name in ("claims.md", "grid.md", "comparisons.md", "blocks_concat_69x3_at_init.md"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name
    results = json.loads(COMMITTED.read_text())
    assert len(results["seeds"]) >= 3 and {"concat_120x3", "sum_120x3", "baseline_99x3"} <= set(results["variants"])
    assert {k for _, _, k in (chapter.VARIANTS[n] for n in results["variants"])} >= {3, 16}  # two widths
    for figure in results["figures"]:
        assert (tmp_path / figure).stat().st_size > 1000
    assert {"grid_test_acc.png", "grid_train_loss.png"} <= set(results["figures"])


def test_ledger_verdicts_are_computed_from_the_results():
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    results = json.loads(COMMITTED.read_text())
    claim = "The 69-layer 3-kernel baseline does not train (chance)"
    entry = results["variants"]["baseline_69x3"]
    entry["test"]["mean"] = 0.10
    assert {c["claim"]: c for c in chapter.claims(results)}[claim]["verdict"] == "reproduced"
    entry["test"]["mean"] = 0.40
    assert {c["claim"]: c for c in chapter.claims(results)}[claim]["verdict"] == "differs"
    order = "Concatenation beats summation at 69 layers, 3 kernels"
    for c in results["comparisons"]:
        if (c["depth"], c["kernels"], c["a"], c["b"]) == (69, 3, "concat", "sum"):
            c["verdict"] = "a > b"
    assert {c["claim"]: c for c in chapter.claims(results)}[order]["verdict"] == "reproduced"


def test_check_script_prints_the_ledger_of_the_committed_run(capsys):
    check = load("check_chapter_05", "scripts/check_chapter_05.py")
    assert check.main([str(COMMITTED)]) == 0
    assert "baseline does not train" in capsys.readouterr().out


def _fake_run(connection, depth, kernels, epochs=3):
    rng = np.random.default_rng(depth * kernels)
    history = [{"epoch": e, "train_loss": 2.3 - 0.3 * e, "train_acc": 0.1 + 0.1 * e, "test_loss": 2.2 - 0.3 * e,
                "test_acc": 0.15 + 0.1 * e} for e in range(epochs)]
    labels = ["input"] + [f"conv{l}" for l in range(1, depth + 1)] + ["bn1", "bn2", "bn3", "fc_0", "fc_1", "logits"]
    norms = list(rng.uniform(0.01, 1.0, len(labels)))
    chain = {"labels": labels, "grad_norms": norms, "gains": [a / b for a, b in zip(norms[:-1], norms[1:])],
             "activation_std": [None] + list(rng.uniform(1e-6, 1.0, len(labels) - 1))}
    flow = [{f"conv{l}": 1e-3 for l in range(1, depth + 1)} | {"logits": 1e-2} for _ in range(epochs)]
    return {"connection": connection, "depth": depth, "kernels": kernels, "history": history,
            "gradient_flow": flow, "chain_rule_at_init": chain, "chain_rule_trained": chain}


def test_figures_draw_gils_figure_4_grid_when_a_run_has_several_widths(tmp_path):
    pytest.importorskip("matplotlib")
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    variants = {f"{c}_12x{k}": {"runs": {"0": _fake_run(c, 12, k)}} for c in ("baseline", "concat") for k in (3, 16)}
    made = [p.name for p in chapter.figures({"variants": variants}, tmp_path)]
    assert {"grid_test_acc.png", "grid_train_loss.png", "training_curves.png", "depth_test_accuracy.png"} <= set(made)
    one_width = {n: v for n, v in variants.items() if n.endswith("x3")}
    assert "grid_test_acc.png" not in [p.name for p in chapter.figures({"variants": one_width}, tmp_path / "one")]


def test_page_sentences_agree_with_the_committed_run():
    """The 'what agrees with Gil' bullets of docs/chapters/05-skip-to-head.md, checked against results.json."""
    chapter = load("chapter_05", "chapters/05_skip_to_head.py")
    results = json.loads(COMMITTED.read_text())
    v = results["variants"]
    page = (ROOT / "docs" / "chapters" / "05-skip-to-head.md").read_text()
    # "the 69- and 99-layer baselines end at chance in every seed, and every skip network of the same depth beats
    # them by more than two standard errors"
    for name in ("baseline_69x3", "baseline_99x3"):
        assert all(abs(r["test_accuracy"] - 0.1) < 0.01 for r in v[name]["runs"].values())
    for skip, base in (("concat_69x3", "baseline_69x3"), ("sum_69x3", "baseline_69x3"),
                       ("concat_120x3", "baseline_99x3"), ("sum_120x3", "baseline_99x3")):
        assert chapter.compare(v[skip]["test"], v[base]["test"])["verdict"] == "a > b", skip
    # "Concatenation against summation: within noise at every depth and width here"
    pairs = [c for c in results["comparisons"] if (c["a"], c["b"]) == ("concat", "sum")]
    assert len(pairs) == 4 and all(c["verdict"] == "within noise" for c in pairs)
    # "at 12 layers 16 kernels give clearly higher test accuracy than 3 for the baseline and the concatenation
    # network; the 16-kernel summation network's seeds spread too widely to say"
    for connection in ("baseline", "concat"):
        assert chapter.compare(v[f"{connection}_12x16"]["test"], v[f"{connection}_12x3"]["test"])["verdict"] == "a > b"
    assert chapter.compare(v["sum_12x16"]["test"], v["sum_12x3"]["test"])["verdict"] == "within noise"
    # "The train - test gap does grow with the kernels, but it stays negative"
    gaps = {k: v[f"concat_12x{k}"]["gap"]["mean"] for k in (3, 16)}
    assert gaps[3] < gaps[16] < 0 and "but it stays negative" in page
