"""The paper's shape (issue 26, item 10): nine checkpoints over 21 languages. Every figure tells
its series apart without reusing a colour, keeps its legend off the data, and the findings are
one table of checkpoints; on the tiny model (a tokenizer trained on the set's own sentences,
so that every script has pieces), the real corpus and damaged copies as checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_tiny_model, perturb_block

from align.cli import main
from align.data.bible import EDITIONS, build_tatoeba_demo
from align.data.xtreme import read_tatoeba, tatoeba_langs

pytestmark = pytest.mark.slow  # the real corpus, 21 languages (about a minute)
LANGS = sorted({e.lang for e in EDITIONS} - {"en"})


@pytest.fixture(scope="module")
def shape(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shape")
    data = build_tatoeba_demo(root / "tat", LANGS, n=10, seed=0, allow_copyrighted=True)
    texts = [t for code in tatoeba_langs(data) for side in vars(read_tatoeba(data, code)).values()
             if isinstance(side, list) for t in side]  # fmt: skip
    base = make_tiny_model(root / "tiny-xlmr", layers=2, corpus=texts, vocab_size=1500)
    argv = ["compare", "--base", str(base), "--data-dir", str(data), "--out", str(root / "o"),
            "--no-cache", "--no-plot", "--n-boot", "100", "--n-boot-spearman", "20",
            "--knn-k", "3", "--no-cka-matrix"]  # fmt: skip
    for i in range(1, 10):
        ckpt = perturb_block(base, root / f"t{i}", block=1 + i % 2, scale=0.2 * i, seed=i)
        argv += ["--ckpt", str(ckpt)]
    assert main(argv) == 0
    (compare,) = (root / "o").glob("compare-*.json")
    argv = ["retrieve", "--ckpt", str(base), "--data-dir", str(data), "--out", str(root / "r"),
            "--no-cache", "--margin-k", "2"]  # fmt: skip
    assert main(argv) == 0
    (retrieve,) = (root / "r").glob("retrieve-*.json")
    return {"compare": compare, "retrieve": retrieve, "root": root}


def _legend_outside(fig, ax) -> bool:
    fig.canvas.draw()
    legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
    renderer = fig.canvas.get_renderer()
    box, axes = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    return box.x0 >= axes.x1 - 1


def test_ten_models_get_ten_styles_and_the_legend_sits_beside_the_axes(shape, monkeypatch):
    from align.report import figures, plots
    from align.results import load_result

    drawn = {}
    monkeypatch.setattr(figures, "_finish", lambda fig, out: drawn.setdefault("fig", fig) and out)
    figures.retrieval_curves(load_result(shape["compare"]), shape["root"] / "curves.png")
    fig = drawn["fig"]
    (ax,) = fig.axes
    looks = [(line.get_color(), line.get_linestyle()) for line in ax.lines if line.get_label()
             != "chance"]  # fmt: skip
    assert len(looks) == 10 and len(set(looks)) == 10
    assert _legend_outside(fig, ax)
    plots.close_all()


def test_many_languages_are_not_told_apart_by_repeated_colours(shape, monkeypatch):
    """21 languages: the attribution scatter colours by layer (a colour bar) and the layer
    curves become a language x layer heatmap; no colour stands for two languages."""
    from align.report import figures, plots
    from align.results import load_result

    result = load_result(shape["compare"])
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, out: saved.append(fig) or out)
    figures.attribution_scatter(result, shape["root"] / "scatter.png", model="t1")
    (fig,) = saved
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert not any(ax.get_legend() for ax in fig.axes)
    plots.close_all()
    monkeypatch.setattr(plots, "_save", lambda fig, out: saved.append(fig) or out)
    plots.plot_layer_curves(shape["retrieve"], shape["root"] / "layers.png")
    heat = saved[-1].axes[0]
    assert heat.images and not heat.lines and len(heat.get_yticklabels()) == 21
    plots.close_all()
    assert len(plots.styles(21)) == len({tuple(s.values()) for s in plots.styles(21)})


def test_the_report_at_the_papers_shape(shape, tmp_path) -> None:
    import re

    out = tmp_path / "report.html"
    assert main(["report", str(shape["compare"]), str(shape["retrieve"]), "--out", str(out)]) == 0
    page = out.read_text()
    glance = page.split('<table class="glance">')[1].split("</table>")[0]
    assert len(re.findall(r"<tr><td>t\d</td>", glance)) == 9
    assert page.count('<details class="section">') == 9  # one section per checkpoint, on a click
    assert page.count("<figcaption>Retrieval by layer") == 1  # every model's curves, once
    assert 'title="' in page  # the wide change tables hold Δ, the rest on hover
