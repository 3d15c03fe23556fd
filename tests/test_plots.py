"""minideep.plots: every figure writes a real PNG of the promised size, atomically, and bad input is refused."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from minideep import plots  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- data


def flow_records(n_epochs: int = 4, n_layers: int = 6, seed: int = 0) -> list[dict[str, float]]:
    """Per-epoch {layer: mean |grad|} records that vanish towards the input, like VGG38's."""
    rng = np.random.default_rng(seed)
    names = ["input_conv_conv_0", "input_conv_bn_0"] + [f"block_0_{i}_conv_0" for i in range(n_layers - 3)]
    names.append("weight_logit_linear_layer")
    return [
        {name: float(10.0 ** (-12 + 9 * i / (n_layers - 1)) * rng.uniform(0.5, 2)) for i, name in enumerate(names)}
        for _ in range(n_epochs)
    ]


def history(n_epochs: int = 5, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "epoch": e + 1,
            "train_loss": 2.3 * np.exp(-e / 3) + rng.uniform(0, 0.05),
            "val_loss": 2.3 * np.exp(-e / 4) + 0.2,
            "train_acc": 0.9 * (1 - np.exp(-e / 2)),
            "val_acc": 0.8 * (1 - np.exp(-e / 2)) + rng.uniform(0, 0.02),
        }
        for e in range(n_epochs)
    ]


def seeds(values: list[float], n: int = 3) -> list[list[float]]:
    rng = np.random.default_rng(1)
    return [list(np.clip(np.asarray(values) + rng.uniform(-0.02, 0.02, len(values)), 0, 1)) for _ in range(n)]


GATES = np.random.default_rng(2).uniform(0, 1, (12, 8))
GAINS_NORMS = [1e-6, 1e-4, 1e-2, 1.0]

# name -> (call(path) -> returned path, expected (width, height) in pixels)
FIGURES = {
    "gradient_flow": (lambda p: plots.gradient_flow(flow_records(), p, title="VGG38"), (1200, 750)),
    "gradient_flow_single_record": (lambda p: plots.gradient_flow(flow_records()[0], p), (1200, 750)),
    "gradient_flow_pair": (
        lambda p: plots.gradient_flow_pair(flow_records(3, 4), flow_records(5, 9), ("VGG08", "VGG38"), p),
        (1800, 750),
    ),
    "gradient_flow_panels": (
        lambda p: plots.gradient_flow_panels(
            {"ResNet26": {"He": flow_records()[0], "Glorot": flow_records()[1]}, "Tiny-YOLO": flow_records(2)},
            p,
        ),
        (1800, 750),
    ),
    "gradient_flow_heatmap": (lambda p: plots.gradient_flow_heatmap(flow_records(8), p), (1200, 750)),
    "chain_rule_gains": (
        lambda p: plots.chain_rule_gains([0.01, 0.01, 0.01], GAINS_NORMS, p, ["x", "h1", "h2", "h3"]),
        (1200, 1200),
    ),
    "gains_grid": (
        lambda p: plots.gains_grid({("sigmoid", "Glorot"): [1e-9, 1e-5, 1e-1], ("relu", "He"): [0.9, 1.0, 1.1]}, p),
        (1200, 750),
    ),
    "gains_grid_panels": (
        lambda p: plots.gains_grid({"init": {"a": [1, 2, 3]}, "trained": {"a": [1, 2], "b": [3, 4, 5, 6]}}, p),
        (1800, 750),
    ),
    "training_curves": (
        lambda p: plots.training_curves({"vgg08": [history(5, s) for s in range(3)], "vgg38": history(4)}, p),
        (1800, 750),
    ),
    "training_curves_std": (
        lambda p: plots.training_curves({"a": [history(5, 0), history(3, 1)]}, p, ("accuracy",), band="std"),
        (1200, 750),
    ),
    "band_grid": (
        lambda p: plots.band_grid(
            {
                arch: {bn: {"He": seeds([0.1, 0.5, 0.9]), "Glorot": seeds([0.1, 0.4, 0.8])} for bn in ("BN", "no BN")}
                for arch in ("Tiny-YOLO", "ResNet26")
            },
            p,
        ),
        (1800, 1200),
    ),
    "band_grid_records": (
        lambda p: plots.band_grid({"ResNet26": {"BN": {"He": [history(4, s) for s in range(3)]}}}, p),
        (1200, 750),
    ),
    "depth_curves": (
        lambda p: plots.depth_curves(
            {
                "plain": {10: [2.3, 1.0, 0.5], 50: [2.3, 2.3, 2.3]},
                "highway": {10: seeds([0.9, 0.5, 0.2]), 50: [2.3, 0.9, 0.4], 100: [2.3, 1.2, 0.6]},
            },
            p,
        ),
        (2400, 750),  # three depths: 18 inches, capped at 16
    ),
    "gate_activity": (
        lambda p: plots.gate_activity(GATES, GATES[::-1], GATES - 0.5, -2 * GATES, p),
        (2400, 750),
    ),
    "gate_activity_1d_biases": (
        lambda p: plots.gate_activity(GATES, GATES, GATES - 0.5, np.linspace(-1, -3, 12), p),
        (2400, 750),
    ),
    "gate_activity_by_class_curves": (
        lambda p: plots.gate_activity_by_class({str(c): GATES.mean(axis=1) for c in range(10)}, p),
        (1200, 750),
    ),
    "gate_activity_by_class_maps": (
        lambda p: plots.gate_activity_by_class({"0": GATES, "7": GATES[::-1]}, p),
        (1800, 750),
    ),
    "lesion_curve": (
        lambda p: plots.lesion_curve(range(1, 11), [0.2] + [0.97] * 9, 0.975, p, chance=0.1),
        (1200, 750),
    ),
    "lesion_curve_names": (
        lambda p: plots.lesion_curve(["hw1", "hw2", "hw3"], [0.5, 0.9, 0.91], 0.92, p),
        (1200, 750),
    ),
    "errorbar_sweep": (
        lambda p: plots.errorbar_sweep([1e-2, 1e-3, 1e-4], [0.01, 0.60, 0.52], [0.0, 0.01, 0.012], p, "learning rate"),
        (1200, 750),
    ),
    "errorbar_sweep_series_with_zero": (
        lambda p: plots.errorbar_sweep(
            [0, 1e-4, 5e-4, 1e-2],
            {"train": [0.7, 0.68, 0.65, 0.4], "validation": [0.55, 0.58, 0.6, 0.4]},
            {"train": [0.01] * 4, "validation": [0.02] * 4},
            p,
            "weight decay",
        ),
        (1200, 750),
    ),
    "errorbar_sweep_labels": (
        lambda p: plots.errorbar_sweep(
            ["lr 1e-3, wd 5e-4", "lr 1e-4, wd 0"], [0.6, 0.5], [0.01, 0.02], p, "configuration"
        ),
        (1200, 750),
    ),
}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, which follows the 8-byte signature."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


# --------------------------------------------------------------------------- every figure


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_writes_png_of_expected_size_and_nothing_else(tmp_path, name):
    call, expected = FIGURES[name]
    target = tmp_path / f"{name}.png"
    returned = call(str(target))  # a str path is accepted, a Path comes back
    assert returned == target and isinstance(returned, Path)
    assert target.stat().st_size > 10_000
    assert png_size(target) == expected
    assert sorted(os.listdir(tmp_path)) == [target.name], "a temporary file was left behind"


@pytest.mark.parametrize("name", ["gradient_flow", "gate_activity", "errorbar_sweep"])
def test_figure_is_not_blank(tmp_path, name):
    from matplotlib.image import imread

    path = FIGURES[name][0](tmp_path / "f.png")
    pixels = imread(path)
    assert pixels.shape[:2] == png_size(path)[::-1]
    assert pixels[..., :3].std() > 0.05  # lines, text and colour, not an empty white canvas


def test_single_panel_is_1200_by_750_pixels():
    assert plots.DPI == 150
    assert plots.figure_size_px() == (1200, 750)
    assert plots.figure_size_px(1, 2) == (1800, 750)
    assert plots.figure_size_px(2, 2) == (1800, 1200)
    assert plots.figure_size_px(1, 8)[0] == 2400  # wide grids are capped at 16 inches


def test_palette_is_okabe_ito_and_distinct():
    assert len(set(plots.PALETTE)) == len(plots.PALETTE) == 8
    assert plots.PALETTE[0] == "#0072B2"


def test_same_data_gives_identical_bytes(tmp_path):
    a = plots.gradient_flow(flow_records(), tmp_path / "a.png")
    b = plots.gradient_flow(flow_records(), tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------- files


def test_parent_folders_are_created(tmp_path):
    target = tmp_path / "results" / "ch03" / "figures" / "flow.png"
    plots.gradient_flow(flow_records(), target)
    assert png_size(target) == (1200, 750)


def test_existing_file_is_replaced(tmp_path):
    target = tmp_path / "flow.png"
    target.write_bytes(b"old")
    plots.gradient_flow(flow_records(), target)
    assert target.read_bytes()[:8] == PNG_SIGNATURE
    assert os.listdir(tmp_path) == ["flow.png"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    target = tmp_path / "flow.png"
    target.write_bytes(b"old figure")

    def broken_savefig(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.gradient_flow(flow_records(), target)
    assert target.read_bytes() == b"old figure"
    assert os.listdir(tmp_path) == ["flow.png"]


def test_written_file_is_world_readable(tmp_path):
    path = plots.lesion_curve([1, 2], [0.5, 0.6], 0.7, tmp_path / "l.png")
    assert path.stat().st_mode & 0o044 == 0o044


def test_path_must_be_png(tmp_path):
    with pytest.raises(ValueError, match=r"gradient_flow: path must end in \.png"):
        plots.gradient_flow(flow_records(), tmp_path / "flow.pdf")


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, minideep, minideep.plots; print('matplotlib' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- log scales


@pytest.mark.filterwarnings("error")
def test_zeros_and_nan_on_log_scales_are_left_out_without_warnings(tmp_path):
    records = flow_records()
    records[0]["input_conv_conv_0"] = 0.0
    records[1]["input_conv_bn_0"] = float("nan")
    plots.gradient_flow(records, tmp_path / "a.png")
    plots.gradient_flow_heatmap(records, tmp_path / "b.png")
    plots.chain_rule_gains([0.0, 0.5, float("nan")], [0.0, 1e-3, 1e-2, 1.0], tmp_path / "c.png")
    plots.gains_grid({"relu": [0.0, -1.0, 1.0, 2.0]}, tmp_path / "d.png")
    plots.depth_curves({"plain": {10: [2.3, 0.0, float("nan")]}}, tmp_path / "e.png")
    assert len(os.listdir(tmp_path)) == 5


@pytest.mark.filterwarnings("error")
def test_all_zero_gradients_still_draw(tmp_path):
    records = [{name: 0.0 for name in flow_records()[0]} for _ in range(3)]
    plots.gradient_flow(records, tmp_path / "a.png")
    plots.gradient_flow_heatmap(records, tmp_path / "b.png")
    assert png_size(tmp_path / "a.png") == (1200, 750)


def test_chain_rule_gains_accepts_a_gain_per_norm(tmp_path):
    # g_0 .. g_L (one per norm): g_0 is drawn but the identity uses g_1 .. g_L.
    path = plots.chain_rule_gains([0.3, 0.01, 0.01, 0.01], GAINS_NORMS, tmp_path / "g.png")
    assert png_size(path) == (1200, 1200)


# --------------------------------------------------------------------------- bad input


EMPTY_CALLS = {
    "gradient_flow": lambda p: plots.gradient_flow([], p),
    "gradient_flow_pair": lambda p: plots.gradient_flow_pair([], flow_records(), ("a", "b"), p),
    "gradient_flow_panels": lambda p: plots.gradient_flow_panels({}, p),
    "gradient_flow_heatmap": lambda p: plots.gradient_flow_heatmap([{}], p),
    "chain_rule_gains": lambda p: plots.chain_rule_gains([], [], p),
    "gains_grid": lambda p: plots.gains_grid({}, p),
    "training_curves": lambda p: plots.training_curves({}, p),
    "band_grid": lambda p: plots.band_grid({}, p),
    "depth_curves": lambda p: plots.depth_curves({}, p),
    "gate_activity": lambda p: plots.gate_activity(np.zeros((0, 3)), GATES, GATES, GATES, p),
    "gate_activity_by_class": lambda p: plots.gate_activity_by_class({}, p),
    "lesion_curve": lambda p: plots.lesion_curve([], [], 0.5, p),
    "errorbar_sweep": lambda p: plots.errorbar_sweep([], [], [], p, "lr"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CALLS))
def test_empty_input_is_a_value_error_naming_the_function(tmp_path, name):
    fn_name = "gradient_flow_panels" if name == "gradient_flow_pair" else name
    with pytest.raises(ValueError, match=rf"^{fn_name}: .*empty"):
        EMPTY_CALLS[name](tmp_path / "x.png")
    assert not os.listdir(tmp_path)


def test_every_public_plot_function_is_covered():
    public = {
        n
        for n in plots.__all__
        if callable(getattr(plots, n)) and getattr(plots, n).__module__.startswith(plots.__name__ + ".")
    }
    assert public - {"figure_size_in", "figure_size_px"} == set(EMPTY_CALLS)
    for name in EMPTY_CALLS:
        doc = getattr(plots, name).__doc__
        assert doc and "Args:" in doc and "Example:" in doc, f"{name} needs a documented example"


def test_records_with_different_layers_are_refused(tmp_path):
    records = flow_records()
    records[2] = dict(list(records[2].items())[:-1])
    with pytest.raises(ValueError, match=r"gradient_flow: records\[2\] has layers"):
        plots.gradient_flow(records, tmp_path / "x.png")


def test_tensor_like_input_is_a_type_error(tmp_path):
    class FakeTensor:
        requires_grad = True

        def __array__(self, dtype=None, copy=None):
            return np.ones(3)

    with pytest.raises(TypeError, match=r"lesion_curve: accuracies must be plain numbers .*FakeTensor"):
        plots.lesion_curve([1, 2, 3], FakeTensor(), 0.5, tmp_path / "x.png")


def test_non_numbers_are_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"gains_grid: curves\['a'\] must be numbers"):
        plots.gains_grid({"a": ["high", "low"]}, tmp_path / "x.png")


def test_accuracy_in_percent_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"lesion_curve: accuracies must be fractions in \[0, 1\].*\[50, 97\]"):
        plots.lesion_curve([1, 2], [50.0, 97.0], 0.97, tmp_path / "x.png")
    bad = [{"train_acc": 55.0, "val_acc": 50.0}]
    with pytest.raises(ValueError, match=r"training_curves: .*fractions"):
        plots.training_curves({"v": bad}, tmp_path / "x.png", metrics=("accuracy",))


def test_missing_metric_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"training_curves: no variant has any of .*'train_loss'"):
        plots.training_curves({"v": [{"train_acc": 0.5}]}, tmp_path / "x.png", metrics=("loss",))


@pytest.mark.parametrize("fn", [plots.training_curves, plots.band_grid, plots.depth_curves])
def test_unknown_band_is_refused(tmp_path, fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: band must be 'minmax', 'std' or None, got 'iqr'"):
        fn({"v": {}}, tmp_path / "x.png", band="iqr")


def test_chain_rule_gains_lengths_must_match(tmp_path):
    with pytest.raises(ValueError, match=r"chain_rule_gains: gains must have .* got 1 gains for 4 norms"):
        plots.chain_rule_gains([0.5], GAINS_NORMS, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"chain_rule_gains: layer_names has 2 entries but grad_norms has 4"):
        plots.chain_rule_gains([0.01] * 3, GAINS_NORMS, tmp_path / "x.png", ["a", "b"])


def test_gate_shapes_must_agree(tmp_path):
    with pytest.raises(ValueError, match=r"gate_activity: the panels must share \(n_layers, n_units\)"):
        plots.gate_activity(GATES, GATES[:5], GATES, GATES, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"gate_activity: .*biases \(3,\)"):
        plots.gate_activity(GATES, GATES, GATES, np.zeros(3), tmp_path / "x.png")


def test_gate_values_outside_unit_interval_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"gate_activity: mean_gate holds gate values, which lie in \[0, 1\]"):
        plots.gate_activity(GATES * 3, GATES, GATES, GATES, tmp_path / "x.png")


def test_lesion_lengths_must_match(tmp_path):
    with pytest.raises(ValueError, match=r"lesion_curve: 3 layers but 2 accuracies"):
        plots.lesion_curve([1, 2, 3], [0.5, 0.6], 0.7, tmp_path / "x.png")


def test_errorbar_sweep_checks_its_series(tmp_path):
    with pytest.raises(ValueError, match=r"errorbar_sweep: 3 values but 2 means and 2 stds"):
        plots.errorbar_sweep([1, 2, 3], [0.5, 0.6], [0.1, 0.1], tmp_path / "x.png", "batch size")
    with pytest.raises(ValueError, match=r"errorbar_sweep: stds must be >= 0"):
        plots.errorbar_sweep([1, 2], [0.5, 0.6], [0.1, -0.1], tmp_path / "x.png", "batch size")
    with pytest.raises(TypeError, match=r"errorbar_sweep: means and stds must both be lists or both be dicts"):
        plots.errorbar_sweep([1, 2], {"val": [0.5, 0.6]}, [0.1, 0.1], tmp_path / "x.png", "batch size")


def test_pair_needs_two_different_labels(tmp_path):
    with pytest.raises(ValueError, match=r"gradient_flow_pair: labels must be two different titles"):
        plots.gradient_flow_pair(flow_records(), flow_records(), ("VGG38", "VGG38"), tmp_path / "x.png")
