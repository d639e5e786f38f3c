"""Writing what the browser shows to files: maps and head grids as PNG and SVG, an input's maps as a bertviz page.

The figures use the screen's own palette and scale (the same xterm colours, or
the truecolor ramp), so a cell has the colour it has on screen; layers and heads
are counted from 1, as on screen. matplotlib is imported only when something is
written, so the browser still starts in about a second.

The HTML page is bertviz's head view and model view over the stored maps:
bertviz's own ``head_view.js`` and ``model_view.js``, read from the installed
bertviz package (a dependency) as files, with the markup and the ``params``
object that bertviz's ``head_view`` and ``model_view`` build with
``html_action='return'``, so the page looks and behaves as bertviz does in a
notebook. bertviz's Python is never imported: it imports torch and IPython,
which the browser never loads. Like bertviz's own output, the page fetches
require.js, d3 and jQuery from cdnjs when opened; the maps are in the file.
Each model's maps are written once, as JSON with 5 decimals (finer than the
uint8 store's steps of 1/255), and the page builds bertviz's ``params`` from
them, rather than repeating them per view and sentence filter as bertviz does,
which would make the file four times larger.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bertsecrets.core import config
from bertsecrets.core.errors import UserError
from bertsecrets.tui.palette import Palette

#: Decimals of the attention values in the HTML page.
DECIMALS = 5
#: Inches per token of a map figure, and the smallest figure side.
INCH_PER_TOKEN, MIN_INCHES = 0.2, 4.0
DPI = 100
REQUIRE_JS = "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js"


@dataclass
class Panel:
    """One matrix of a figure with the colours it has on screen: ``low``..``high`` (diverging: -high..high)."""

    title: str
    matrix: np.ndarray
    palette: Palette
    low: float
    high: float


@dataclass
class Written:
    """Files written, and where each panel's matrix lies in the PNG: (left, top, right, bottom) in pixels."""

    paths: list[Path]
    boxes: list[tuple[float, float, float, float]]


# -- files ------------------------------------------------------------------------------


def folder(explicit: str | Path | None = None) -> Path:
    """The exports folder (``$BERTSECRETS_EXPORTS``, else ./bertsecrets-exports), made if missing."""
    path = Path(explicit) if explicit is not None else config.exports_path()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the exports folder {path}: {exc.strerror or exc}; "
                        f"set ${config.EXPORTS_ENV} to a folder you can write") from None
    return path


def stem(*parts: Any) -> str:
    """A file name from ``parts``: letters, digits, '.', '_' and '-' only."""
    return "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", str(p)).strip("_") for p in parts if str(p))


def _write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file and rename, so a half-written export never has the final name."""
    part = path.with_name(path.name + ".part")
    try:
        write(part)
        part.replace(path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; set ${config.EXPORTS_ENV} to a folder "
                        f"you can write") from None
    return path


# -- figures -----------------------------------------------------------------------------


def literal(text: str) -> str:
    """``text`` as matplotlib should print it: a "$" is a dollar, not the start of mathematics."""
    return str(text).replace("$", r"\$")


def colormap(palette: Palette, name: str = "bertsecrets"):
    """The palette's levels as a matplotlib colormap: value -> level exactly as ``Palette.levels`` does."""
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap([tuple(c / 255 for c in color.get_truecolor()) for color in palette.colors], name=name)
    return cmap.with_extremes(bad=(1, 1, 1, 0))  # NaN: empty, as on screen


def _norm(panel: Panel):
    from matplotlib.colors import Normalize

    if panel.palette.diverging:
        span = panel.high if panel.high > 0 else 1.0
        return Normalize(-span, span, clip=True)
    high = panel.high if panel.high > panel.low else panel.low + 1.0
    return Normalize(panel.low, high, clip=True)


def _save(fig, path_stem: Path) -> list[Path]:
    import matplotlib

    paths = [_write(path_stem.with_suffix(".png"), lambda p: fig.savefig(p, dpi=DPI, format="png"))]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "bertsecrets"}):  # text stays text
        paths.append(_write(path_stem.with_suffix(".svg"), lambda p: fig.savefig(p, format="svg")))
    return paths


def _lay_out(fig) -> None:
    """Lay the figure out once, with Agg as the PNG will be, and keep it: the boxes then hold for the files."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    fig.set_layout_engine("none")


def _box(fig, ax, rows: int, cols: int) -> tuple[float, float, float, float]:
    """Where cells [0, rows) x [0, cols) of ``ax`` are in the PNG, in pixels from its top left corner."""
    # The outer edges of cell (0, 0) and cell (rows - 1, cols - 1); imshow puts row 0 at the top.
    (x0, y0), (x1, y1) = ax.transData.transform([(-0.5, -0.5), (cols - 0.5, rows - 0.5)])
    height = fig.get_figheight() * DPI
    return (float(x0), float(height - y0), float(x1), float(height - y1))


def write_map(panels: Sequence[Panel], tokens: Sequence[str], title: str, name: str,
              where: str | Path | None = None) -> Written:
    """Maps side by side as PNG and SVG: query tokens down, key tokens across, each with its colour bar."""
    from matplotlib.figure import Figure

    n = panels[0].matrix.shape[0]
    labels = [literal(t) for t in tokens] if len(tokens) == n else [str(i) for i in range(n)]
    side = max(MIN_INCHES, INCH_PER_TOKEN * n + 1.5)
    fig = Figure(figsize=(len(panels) * (side + 1.2), side + 1.2), dpi=DPI, layout="constrained")
    fig.suptitle(literal(title))
    font = 9 if n <= 60 else 7
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        image = ax.imshow(panel.matrix, cmap=colormap(panel.palette), norm=_norm(panel), interpolation="nearest")
        ax.set_title(literal(panel.title))
        ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(n), labels, fontsize=font)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        fig.colorbar(image, ax=ax, shrink=0.8)
    _lay_out(fig)
    boxes = [_box(fig, ax, n, n) for ax in axes]
    return Written(_save(fig, folder(where) / name), boxes)


def _cell_text(grid, layer: int, head: int) -> str:
    value = grid.values[layer, head]
    text = grid.text[layer][head] if grid.text is not None else ("" if np.isnan(value) else grid.fmt(float(value)))
    starred = grid.marks is not None and bool(grid.marks[layer, head])
    return text + ("*" if starred else "")


def write_grid(grid, palette: Palette, title: str, name: str, classes: Sequence[str] = (),
               where: str | Path | None = None) -> Written:
    """A head grid (layers down, heads across, both from 1) as PNG and SVG, cell texts and marks included.

    ``grid`` is a ``stats.Grid``; a categorical grid colours class indices with
    ``palette`` (the classes' colours) and names ``classes`` in its legend.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    layers, heads = grid.values.shape
    fig = Figure(figsize=(max(5.0, 0.75 * heads + 2.5), max(3.5, 0.5 * layers + 1.8)), dpi=DPI, layout="constrained")
    fig.suptitle(literal(title))
    ax = fig.subplots()
    cmap = colormap(palette)
    if grid.kind == "cat":
        from matplotlib.colors import BoundaryNorm

        norm = BoundaryNorm(np.arange(palette.n + 1) - 0.5, palette.n)
        panel = None
    else:
        panel = Panel("", grid.values, palette, grid.low, grid.high)
        norm = _norm(panel)
    image = ax.imshow(grid.values, cmap=cmap, norm=norm, interpolation="nearest", aspect="equal")
    ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)])
    ax.set_yticks(range(layers), [str(layer + 1) for layer in range(layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    levels = palette.levels(grid.values, grid.low, grid.high) if panel is not None else \
        np.where(np.isnan(grid.values), -1, grid.values).astype(int)
    for layer in range(layers):
        for head in range(heads):
            text = _cell_text(grid, layer, head)
            if text:
                level = int(levels[layer, head])
                rgb = palette.colors[level].get_truecolor() if level >= 0 else (255, 255, 255)
                light = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] > 110
                ax.text(head, layer, literal(text), ha="center", va="center", fontsize=7,
                        color="black" if light else "white")
    if grid.kind == "cat":
        ax.legend(handles=[Patch(color=cmap(i), label=literal(c)) for i, c in enumerate(classes)],
                  loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    else:
        fig.colorbar(image, ax=ax, shrink=0.8)
    if grid.note:
        fig.supxlabel(literal(grid.note), fontsize=8)
    _lay_out(fig)
    return Written(_save(fig, folder(where) / name), [_box(fig, ax, layers, heads)])


# -- bertviz -----------------------------------------------------------------------------


def prettify(tokens: Sequence[str]) -> list[str]:
    """What bertviz does to tokens before showing them (``format_special_chars``)."""
    return [t.replace("Ġ", " ").replace("▁", " ").replace("</w>", "") for t in tokens]


def bertviz_folder() -> Path:
    """The installed bertviz package's folder, found without importing bertviz (which would import torch)."""
    spec = importlib.util.find_spec("bertviz")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("bertviz is not installed, so its views cannot be written: pip install 'bertviz>=1.4.1'")
    return Path(next(iter(spec.submodule_search_locations)))


def bertviz_js(view: str) -> str:
    """bertviz's own script of ``view`` ("head" or "model"), read from the installed package."""
    path = bertviz_folder() / f"{view}_view.js"
    try:
        script = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read bertviz's {path.name} ({exc.strerror or exc}): "
                        f"reinstall it with pip install --force-reinstall 'bertviz>=1.4.1'") from None
    if "PYTHON_PARAMS" not in script:  # bertviz's Python fills the params in there; without it the page cannot
        raise UserError(f"{path} is not the bertviz view this browser knows (no PYTHON_PARAMS in it): "
                        f"pip install 'bertviz>=1.4.1,<2'")
    return script


def view_html(view: str, root_id: str, filters: Sequence[str]) -> str:
    """The markup bertviz's ``head_view`` / ``model_view`` put before their script, byte for byte."""
    if len(filters) > 1:
        options = "\n".join(f'<option value="{i}">{name}</option>' for i, name in enumerate(filters))
        select_html = f'Attention: <select id="filter">{options}</select>'
    else:
        select_html = ""
    layer = "\n                Layer: <select id=\"layer\"></select>" if view == "head" else ""
    return f"""      
        <div id="{root_id}" style="font-family:'Helvetica Neue', Helvetica, Arial, sans-serif;">
            <span style="user-select:none">{layer}
                {select_html}
            </span>
            <div id='vis'></div>
        </div>
    """


def filters_of(sentence_b_start: int | None) -> list[str]:
    """bertviz's sentence filters: all pairs, or (for a sentence pair) also A->A, B->B, A->B, B->A."""
    if sentence_b_start is None:
        return ["All"]
    return ["All", "Sentence A -> Sentence A", "Sentence B -> Sentence B", "Sentence A -> Sentence B",
            "Sentence B -> Sentence A"]


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "</script>", "<!--" or "&" can end or change it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c") \
        .replace(">", "\\u003e").replace("&", "\\u0026")


# Builds bertviz's params (the object head_view.py / model_view.py put in place of PYTHON_PARAMS) from the
# page's data: the attention of all pairs, and of each pair of sentences when the input has two.
PARAMS_JS = """
function bertsecretsParams(view, role, rootId) {
  const data = JSON.parse(document.getElementById("bertsecrets-data").textContent);
  const attn = data.attention[role];
  const tokens = data.tokens;
  const b = data.sentence_b_start;
  const layers = attn.map((_, i) => i);
  const slice = (rows, cols) => attn.map(layer => layer.map(head =>
      head.slice(rows[0], rows[1]).map(row => row.slice(cols[0], cols[1]))));
  let attention;
  if (b === null) {
    attention = [{name: null, attn: attn, left_text: tokens, right_text: tokens}];
  } else {
    const A = [0, b], B = [b, tokens.length];
    const part = (name, r, c) => ({name: name, attn: slice(r, c), left_text: tokens.slice(r[0], r[1]),
                                   right_text: tokens.slice(c[0], c[1])});
    attention = [{name: "All", attn: attn, left_text: tokens, right_text: tokens},
                 part("Sentence A -> Sentence A", A, A), part("Sentence B -> Sentence B", B, B),
                 part("Sentence A -> Sentence B", A, B), part("Sentence B -> Sentence A", B, A)];
  }
  if (view === "head") {
    return {attention: attention, default_filter: "0", root_div_id: rootId, layer: null, heads: null,
            include_layers: layers};
  }
  const heads = attn[0].map((_, i) => i);
  return {attention: attention, default_filter: "0", display_mode: "light", root_div_id: rootId,
          include_layers: layers, include_heads: heads, total_heads: heads.length};
}
"""

ROLE_TITLES = {"pretrained": "pretrained", "finetuned": "fine-tuned"}


def bertviz_page(tokens: Sequence[str], attention: dict[str, np.ndarray], sentence_b_start: int | None,
                 title: str, about: str = "") -> str:
    """A standalone HTML page: bertviz's head view and model view of each model's ``attn[layer, head, L, L]``."""
    n = len(tokens)
    for role, maps in attention.items():
        if maps.ndim != 4 or maps.shape[-2:] != (n, n):
            raise UserError(f"the {role} maps have the shape {maps.shape}, not (layers, heads, {n}, {n}) "
                            f"for the input's {n} tokens: run `bertsecrets check`")
    data = {"tokens": prettify(tokens), "sentence_b_start": sentence_b_start,
            "attention": {role: np.round(np.asarray(m, dtype=np.float64), DECIMALS).tolist()
                          for role, m in attention.items()}}
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>",
             "<style>body{margin:1.5em;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif}"
             "h2{margin-top:2em}</style>", "</head>", "<body>", f"<h1>{html.escape(title)}</h1>"]
    if about:
        parts.append(f"<p>{html.escape(about)}</p>")
    parts.append("<p>bertviz's head view and model view (hover or click a token, double-click a head's colour). "
                 "Opening this page fetches require.js, d3 and jQuery from cdnjs, as bertviz does; "
                 "the maps are in the page.</p>")
    parts += [f'<script src="{REQUIRE_JS}"></script>',
              f'<script type="application/json" id="bertsecrets-data">{script_json(data)}</script>',
              f'<script type="text/javascript">{PARAMS_JS}</script>']
    filters = filters_of(sentence_b_start)
    for role in attention:
        for view in ("head", "model"):
            root_id = f"bertviz-{uuid.uuid4().hex}"
            call = f"bertsecretsParams({json.dumps(view)}, {json.dumps(role)}, {json.dumps(root_id)})"
            parts.append(f"<h2>{html.escape(ROLE_TITLES.get(role, role))}: {view} view</h2>")
            parts.append(view_html(view, root_id, filters))
            parts.append('\n<script type="text/javascript">\n' + bertviz_js(view).replace("PYTHON_PARAMS", call)
                         + "\n</script>\n")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def read_page_data(text: str) -> dict[str, Any]:
    """The tokens and maps a page written by ``bertviz_page`` holds (for tests and other tools)."""
    found = re.search(r'<script type="application/json" id="bertsecrets-data">(.*?)</script>', text, re.S)
    if found is None:
        raise UserError("not a page written by bertsecrets: it has no bertsecrets-data element")
    return json.loads(found.group(1))


def write_bertviz(tokens: Sequence[str], attention: dict[str, np.ndarray], sentence_b_start: int | None,
                  title: str, name: str, about: str = "", where: str | Path | None = None) -> Path:
    page = bertviz_page(tokens, attention, sentence_b_start, title, about)
    return _write(folder(where) / f"{name}.html", lambda p: p.write_text(page, encoding="utf-8"))


# -- from the screens: gather on the event loop, write in a worker thread --------------------


def deliver(app, paths: Sequence[Path]) -> str:
    """In a web browser, send the files written on the server to it as downloads; what to add to the status line.

    Call on the event loop. In a terminal the files are where the status line says, and nothing is sent.
    """
    if not app.is_web:
        return ""
    for path in paths:
        app.deliver_binary(path)
    return "; sent to this browser"


def in_background(screen, write: Callable[[], Sequence[Path]], show: Callable[[str], None]) -> None:
    """Run ``write`` in a worker thread; ``show`` gets "wrote PATHS" (or the error) on the event loop."""
    def done(text: str, paths: Sequence[Path]) -> None:
        show(text + deliver(screen.app, paths))

    def work() -> None:
        paths: Sequence[Path] = ()
        try:
            paths = write()
            text = "wrote " + " and ".join(str(p) for p in paths)
        except UserError as exc:
            text = f"not exported: {exc}"
        except Exception as exc:  # a bug or an odd map: said in place, the browser goes on
            text = "not exported: " + " ".join(f"{type(exc).__name__}: {exc}".split())
        screen.app.call_from_thread(done, text, paths)

    show("exporting...")
    screen.run_worker(work, group="export", thread=True, exit_on_error=False)


def from_map_screen(screen, what: str) -> None:
    """The map screen's `e` (the panes on screen as PNG and SVG) and `b` (the input's maps as a bertviz page)."""
    from rich.text import Text
    from textual.widgets import Static

    context, s = screen.context, screen.selection
    status = screen.query_one("#map-status", Static)
    if context is None or not screen.data:
        status.update("nothing to export yet")
        return
    if screen.left(screen.shown_key):  # the maps held are of the input left: they would go out under this one's words
        status.update(f"input {s.example + 1} is still being read: export it once its maps show")
        return
    tokens = list(context.tokens[s.example]) if s.example < len(context.tokens) else []
    where = f"{context.task.upper()} input {s.example + 1}"
    if what == "bertviz":
        maps = {role: m for role, m in screen.data.items() if not isinstance(m, str)}
        if not maps:
            status.update(Text("no maps of this input to export"))
            return
        run_id, example, reader = s.run_id, s.example, screen.reader

        def write() -> list[Path]:
            pieces = reader.pieces(run_id, example)
            b = next((r["position"] for r in pieces if r["segment"] == 1), None)
            return [write_bertviz(tokens, maps, b, f"{where}: attention of every head",
                                  stem(context.task, run_id, f"input{example + 1}", "bertviz"),
                                  about=f"run {run_id}; layers and heads counted from 0 in bertviz's views")]
    else:
        shown = [pane for pane in screen.panes() if pane.display and pane.matrix is not None]
        panels = [Panel(str(pane.border_title or pane.id), pane.matrix, pane.palette, pane.low, pane.high)
                  for pane in shown]
        if not panels:
            status.update(Text("no map on screen to export"))
            return
        title = f"{where}, layer {s.layer + 1}, head {s.head + 1}"
        name = stem(context.task, s.run_id, f"input{s.example + 1}", f"L{s.layer + 1}H{s.head + 1}",
                    shown[0].id if len(shown) == 1 else "all")

        def write() -> list[Path]:
            return write_map(panels, tokens, title, name).paths

    in_background(screen, write, lambda text: status.update(Text(text)))


def from_grid_screen(screen) -> None:
    """The head grid's `e`: the grid on screen as PNG and SVG; the path goes under its legend."""
    from rich.text import Text
    from textual.widgets import Static

    from bertsecrets.store.labels import PATTERN_CLASSES
    from bertsecrets.tui.widgets.grid import HeadGrid

    widget = screen.query_one(HeadGrid)
    legend = screen.query_one("#heads-legend", Static)
    stats, grid = screen.stats, widget.grid
    if stats is None or grid is None:
        legend.update(Text("nothing to export: this statistic has no values for the run"))
        return
    what = screen.stat.title + (f": {screen.option}" if screen.option else "")
    role = f" ({screen.selection.role})" if screen.stat.by_role else ""
    over = screen.over
    seeds = screen.seed_grid.seeds if over != "run" and screen.seed_grid is not None else []
    title = f"{stats.task.upper()} {what}{role}" + (f", {over} over seeds {', '.join(map(str, seeds))}" if seeds else "")
    name = stem(stats.task, stats.run_id, "grid", screen.stat.key, screen.option or "",
                screen.selection.role if screen.stat.by_role else "", over if seeds else "")
    palette = widget.palette
    shown = "\n".join(line for line in str(legend.render()).split("\n")
                      if not line.startswith(("wrote ", "not exported", "exporting")))

    def write() -> list[Path]:
        return write_grid(grid, palette, title, name, classes=PATTERN_CLASSES).paths

    in_background(screen, write, lambda text: legend.update(Text(f"{shown}\n{text}")))
