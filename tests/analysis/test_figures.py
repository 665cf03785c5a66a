"""Figures: structure of the returned matplotlib figures (not pixels), no downloads."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from pcm.analysis import figures  # noqa: E402
from pcm.analysis.r2 import r2_dataset  # noqa: E402
from pcm.analysis.scoring import driver_scores  # noqa: E402
from pcm.variables import gaussian_grid, input_labels, output_labels  # noqa: E402

OUT, INP = output_labels(), input_labels()
KINDS = ["unconstrained", "pcmasking"]


@pytest.fixture(autouse=True)
def _no_downloads_and_close(monkeypatch):
    """Fail on any attempt of cartopy (or anything) to fetch from the network."""
    import urllib.request

    import cartopy.io

    def refuse(*args, **kwargs):
        raise AssertionError("a figure tried to download something")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(cartopy.io.Downloader, "acquire_resource", refuse)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def r2():
    grid = gaussian_grid(6, 8)
    rng = np.random.default_rng(0)
    parts = []
    for k, kind in enumerate(KINDS):
        climates = []
        for climate in ("control", "plus4K"):
            t = rng.normal(size=(5 * 48, 65))
            p = t + (0.3 + 0.3 * k) * rng.normal(size=t.shape)
            climates.append(r2_dataset(t, p, grid["lat"], grid["lon"])
                            .expand_dims(climate=[climate]))
        parts.append(xr.concat(climates, "climate").expand_dims(model=[kind]))
    return xr.concat(parts, "model")


def _matrix(values) -> xr.DataArray:
    return xr.DataArray(values, dims=("output", "input"), coords={"output": OUT, "input": INP})


def _draw(fig):
    fig.canvas.draw()  # renders everything: any lazy download would happen here


@pytest.mark.slow
def test_r2_maps(r2):
    fig = figures.r2_maps(r2, "prect", climate="plus4K")
    _draw(fig)
    maps = [ax for ax in fig.axes if hasattr(ax, "projection")]
    assert len(maps) == 2 and len(fig.axes) == 3  # two maps + colour bar
    assert maps[0].get_title().startswith("unconstrained: prect")
    assert "plus4K" in fig._suptitle.get_text()
    one = figures.r2_maps(r2, "tphystnd-691.39", models=["pcmasking"],
                          projection="platecarree")
    _draw(one)
    assert len([ax for ax in one.axes if hasattr(ax, "projection")]) == 1
    with pytest.raises(ValueError, match="not in the data"):
        figures.r2_maps(r2, "prect", models=["causal"])


def test_r2_profiles(r2):
    fig = figures.r2_profiles(r2)
    _draw(fig)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["TPHYSTND", "PHQ"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == len(KINDS)
    assert len(lines[0].get_ydata()) == 30
    assert fig.axes[0].yaxis_inverted()  # pressure increases downwards
    assert fig.axes[0].get_ylabel() == "Pressure (hPa)"
    np.testing.assert_allclose(lines[1].get_xdata(),
                               r2["r2"].sel(model="pcmasking", climate="control").values[:30])


def test_r2_cross_sections(r2):
    fig = figures.r2_cross_sections(r2, "phq")
    _draw(fig)
    assert len(fig.axes) == 3  # two panels + colour bar
    mesh = fig.axes[0].collections[0]
    assert mesh.get_array().size == 30 * 6
    assert fig.axes[1].get_title() == "pcmasking: PHQ"


@pytest.mark.slow
def test_feature_matrix_and_shap_matrix():
    rng = np.random.default_rng(1)
    mask = _matrix(rng.uniform(size=(65, 94)) > 0.7)
    fig = figures.feature_matrix(mask, title="Masks", cmap="Greys")
    _draw(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "Masks"
    assert ax.images[0].get_array().shape == (65, 94)
    top, right = ax.child_axes  # the variables, outside the levels
    assert [t.get_text() for t in top.get_xticklabels()] == ["QBP", "TBP", "VBP", "2-D"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["TPHYSTND", "PHQ", "2-D"]
    # the inner ticks name levels (hPa) and the 2-D inputs, at their columns
    xt = {int(pos): t.get_text() for pos, t in zip(ax.get_xticks(), ax.get_xticklabels(),
                                                    strict=True)}
    assert xt[0] == "3.6" and xt[29] == "993" and xt[60 + 20] == "691"  # VBP at 691 hPa
    assert [xt[i] for i in range(90, 94)] == ["PS", "SOLIN", "SHFLX", "LHFLX"]
    yt = {int(pos): t.get_text() for pos, t in zip(ax.get_yticks(), ax.get_yticklabels(),
                                                    strict=True)}
    assert yt[59] == "993" and yt[64] == "PRECT"
    # separators between groups: 3 on inputs (4 groups), 2 on outputs (3 groups)
    assert len(ax.get_lines()) == 5
    shap = xr.Dataset({"shap": (("model", "output", "input"), rng.uniform(size=(2, 65, 94)))},
                      coords={"model": KINDS, "output": OUT, "input": INP})
    fig = figures.shap_matrix(shap, "pcmasking")
    _draw(fig)
    assert fig.axes[0].get_title() == "Mean |SHAP|: pcmasking"
    assert len(fig.axes) == 2


def test_driver_score_bars():
    rng = np.random.default_rng(2)
    truth = _matrix(rng.uniform(size=(65, 94)) > 0.8)
    tables = {k: driver_scores(_matrix(rng.uniform(size=(65, 94)) > 0.5), truth)
              for k in ("causal", "pcmasking")}
    fig = figures.driver_score_bars(tables)
    _draw(fig)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].patches) == 6  # 3 metrics x 2 kinds
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["precision", "recall",
                                                                     "f1"]
    fig = figures.driver_score_bars(tables, by="group")
    assert [ax.get_title() for ax in fig.axes] == ["QBP", "TBP", "VBP", "2-D"]


def test_masking_vector_plot():
    rng = np.random.default_rng(3)
    vectors = _matrix(rng.uniform(size=(65, 94)))
    truth = _matrix(np.eye(65, 94, dtype=bool))
    fig = figures.masking_vector_plot(vectors, "prect", threshold=0.5, drivers=truth)
    _draw(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "Masking vector of prect"
    data_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 94]
    assert len(data_lines) == 1
    np.testing.assert_allclose(data_lines[0].get_ydata(), vectors.sel(output="prect").values)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # outside the axes
    assert labels[0] == "masking vector" and labels[1].startswith("threshold 0.5")


def test_training_history():
    history = xr.Dataset(
        {"loss": (("epoch", "network"), np.array([[2.0, 4.0], [1.0, 2.0]])),
         "val_loss": (("epoch", "network"), np.array([[3.0, 5.0], [2.0, 3.0]]))},
        coords={"epoch": [1, 2], "network": [0, 1]})
    fig = figures.training_history(history, "pre-masking", ylabel="MSE + L1")
    ax = fig.axes[0]
    assert ax.get_title() == "pre-masking" and ax.get_ylabel() == "MSE + L1"
    assert ax.get_yscale() == "log"
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["training"], [3.0, 1.5])  # mean over the networks
    np.testing.assert_allclose(lines["validation"], [4.0, 2.5])


def test_threshold_search_marks_the_chosen_threshold():
    values = np.array([[0.1, 0.2, 0.3], [0.05, 0.1, np.nan]])
    loss = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, np.nan]])
    ds = xr.Dataset({"threshold_value": (("output", "threshold_index"), values),
                     "loss": (("output", "threshold_index"), loss),
                     "threshold": ("output", [0.2, 0.05])},
                    coords={"output": OUT[:2]})
    fig = figures.threshold_search(ds, OUT[:2], ylabel="val_loss")
    _draw(fig)
    ax = fig.axes[0]
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert [(s.get_xdata()[0], s.get_ydata()[0]) for s in stars] == [(0.2, 1.0), (0.05, 1.0)]
    assert ax.get_ylabel() == "val_loss"


def test_snapshot_maps_and_mean_profiles_of_cbrain_data(tmp_path):
    from pcm.data import synthetic
    from pcm.data.cbrain import open_cbrain, sample_grid
    from pcm.data.cbrain_write import write_cbrain
    from pcm.variables import LEVELS_HPA

    path = write_cbrain(synthetic.generate(2, seed=0, n_lat=3, n_lon=4), tmp_path / "f.nc")
    with open_cbrain(path) as ds:
        data = ds.load()
    grid = sample_grid(data)
    fig = figures.snapshot_maps(data, grid["lat"], grid["lon"], {"TBP": -1, "PRECT": 0,
                                                                  "PS": 0})
    _draw(fig)
    from matplotlib.collections import QuadMesh

    maps = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    meshes = [c for ax in maps for c in ax.collections
              if isinstance(c, QuadMesh)]
    assert len(meshes) == 3
    assert meshes[0].get_array().size == 3 * 4  # one time step of the 3 x 4 grid
    fig = figures.mean_profiles(data, ["TBP", "PHQ"], LEVELS_HPA)
    _draw(fig)
    assert [ax.get_xlabel() for ax in fig.axes] == ["TBP (K)", "PHQ (kg/kg/s)"]
    assert len(fig.axes[0].lines[0].get_ydata()) == len(LEVELS_HPA)


def test_training_history_of_one_epoch(tmp_path):
    """`--set finetune_epochs=1`: the history has one epoch (notebook 4 once crashed on
    xarray's `.plot()` with "No numeric data to plot"); each curve is one marked point."""
    history = xr.Dataset(
        {"loss": (("epoch", "network"), np.array([[2.0, 4.0]])),
         "val_loss": (("epoch", "network"), np.array([[3.0, 5.0]]))},
        coords={"epoch": [1], "network": [0, 1]})
    history.to_netcdf(tmp_path / "history_finetune.nc")  # as notebook 4 reads it back
    fig = figures.training_history(xr.load_dataset(tmp_path / "history_finetune.nc"),
                                   "fine-tuning (masking phase)")
    _draw(fig)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"training", "validation"}
    np.testing.assert_allclose(lines["training"].get_ydata(), [3.0])
    np.testing.assert_allclose(lines["validation"].get_xdata(), [1])
    assert all(line.get_marker() not in (None, "None", "") for line in lines.values())
    low, high = ax.get_ylim()
    assert 0 < low < 3.0 < 4.0 < high  # both points inside a finite log axis


def test_r2_maps_on_an_unstructured_grid_draw_one_dot_per_column():
    from pcm.analysis.r2 import r2_dataset
    from pcm.variables import climsim_catalogue

    cat = climsim_catalogue(np.linspace(1.0, 1000.0, 60))
    rng = np.random.default_rng(4)
    n_col = 12
    t = rng.normal(size=(5 * n_col, cat.n_outputs))
    ds = r2_dataset(t, t + 0.1 * rng.normal(size=t.shape), rng.uniform(-80, 80, n_col),
                    rng.uniform(0, 360, n_col), area=np.ones(n_col), catalogue=cat)
    r2 = ds.expand_dims(model=["unconstrained"], climate=["control"])
    fig = figures.r2_maps(r2, "cam_out_precc")
    _draw(fig)
    dots = fig.axes[0].collections[0]
    assert dots.get_offsets().shape == (n_col, 2)
    fig = figures.r2_profiles(r2, ["ptend_t", "ptend_q0001"])
    _draw(fig)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["PTEND_T", "PTEND_Q0001"]


def test_masks_are_drawn_in_two_colours_with_a_two_entry_colour_bar():
    rng = np.random.default_rng(5)
    fig = figures.feature_matrix(_matrix(rng.uniform(size=(65, 94)) > 0.7).astype(int))
    _draw(fig)
    image = fig.axes[0].images[0]
    assert image.cmap.N == 2  # two colours, not a continuous ramp
    bar = fig.axes[1]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["dropped (0)", "kept (1)"]
    # a masking vector (floats) keeps a continuous scale
    fig = figures.feature_matrix(_matrix(rng.uniform(size=(65, 94))), log=True)
    assert fig.axes[0].images[0].cmap.N > 2


def test_shap_panels_share_one_colour_range():
    rng = np.random.default_rng(6)
    values = rng.uniform(size=(3, 65, 94)) * np.array([1.0, 10.0, 100.0])[:, None, None]
    shap = xr.Dataset({"shap": (("model", "output", "input"), values)},
                      coords={"model": ["unconstrained", "causal", "pcmasking"], "output": OUT,
                              "input": INP})
    fig = figures.shap_matrices(shap)
    _draw(fig)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    limits = {(im.norm.vmin, im.norm.vmax) for im in images}
    assert len(limits) == 1  # one colour range for the three panels
    vmin, vmax = limits.pop()
    assert vmin == pytest.approx(values.min()) and vmax == pytest.approx(values.max())
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1
    assert "(" in [ax for ax in fig.axes if ax.get_label() == "<colorbar>"][0].get_ylabel()


def test_epoch_axis_has_integer_ticks_and_the_legend_sits_outside_the_data():
    history = xr.Dataset(
        {"loss": (("epoch", "network"), np.array([[2.0, 4.0], [1.0, 2.0], [0.5, 1.0]])),
         "val_loss": (("epoch", "network"), np.array([[3.0, 5.0], [2.0, 3.0], [1.0, 2.0]]))},
        coords={"epoch": [1, 2, 3], "network": [0, 1]})
    fig = figures.training_history(history, "pre-masking")
    _draw(fig)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())


def test_colour_bars_and_axes_name_their_units(tmp_path, r2):
    from pcm.data import synthetic
    from pcm.data.cbrain import open_cbrain, sample_grid
    from pcm.data.cbrain_write import write_cbrain
    from pcm.variables import LEVELS_HPA

    path = write_cbrain(synthetic.generate(2, seed=0, n_lat=3, n_lon=4), tmp_path / "f.nc")
    with open_cbrain(path) as ds:
        data = ds.load()
    grid = sample_grid(data)
    fig = figures.snapshot_maps(data, grid["lat"], grid["lon"], {"TBP": -1, "PRECT": 0})
    bars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars == ["TBP (K)", "PRECT (m/s)"]
    assert "993 hPa" in fig.axes[0].get_title()
    fig = figures.mean_profiles(data, ["TBP", "PHQ"], LEVELS_HPA)
    assert [ax.get_xlabel() for ax in fig.axes] == ["TBP (K)", "PHQ (kg/kg/s)"]
    maps = figures.r2_maps(r2.assign_attrs(time_steps_control=36), "prect")
    assert "36 test steps per point" in maps._suptitle.get_text()  # why the map is noisy
    for fig in (maps, figures.r2_cross_sections(r2, "phq")):
        labels = [ax.get_ylabel() or ax.get_xlabel() for ax in fig.axes
                  if ax.get_label() == "<colorbar>"]
        assert labels == ["R² (1)"]


def test_sweep_lines_of_whole_numbers_have_integer_ticks_and_an_outside_legend():
    from pcm.analysis import experiment_figures

    table = xr.Dataset({"f1": ("point", [0.2, 0.3, 0.25]), "auc": ("point", [0.6, 0.7, 0.65])},
                       coords={"hidden_layers": ("point", [1, 2, 3])})
    fig = experiment_figures.sweep_lines(table, "hidden_layers", ["f1", "auc", "missing"])
    _draw(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert ax.get_ylabel() == "score (1)" and ax.get_legend() is None
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["f1", "auc"]
