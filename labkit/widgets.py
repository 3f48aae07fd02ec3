"""The widget pattern every notebook uses: `interact(plot_fn, **controls)`.

1. `plot_fn(**defaults)` is called directly, so a headless run (nbmake, CI) executes it and fails
   loudly on its errors. The figure it draws is captured rather than shown on its own.
2. One output then carries the controls and that figure. A frontend with ipywidgets (JupyterLab)
   renders the live widget: the controls, a status line and the one figure below them, redrawn on
   every move. Anything else (nbconvert, a static viewer) renders the captured figure, which rides
   along in the same output as its `image/png`. Either way the section shows one figure.
3. A move shows `BUSY` at once, then redraws after a short pause (`DEBOUNCE_S`) for the values the
   controls hold *then*. The kernel handles one message at a time, so moves made while a setting
   trains wait; when it finishes they are read together and coalesced into one redraw for the latest
   values: the figure never falls behind the controls.

ipywidgets swallows exceptions raised in callbacks; a redraw catches them itself, shows the traceback
where the figure would be, and keeps it in `Wired.errors`. Experiments are cached, so moving a control
back to a visited value replots at once — and after `visit_every_position()` (what `labkit warm --widgets`
runs at the end of each notebook) every move does.
"""
from __future__ import annotations

import asyncio
import base64
import traceback
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as widgets
from IPython.display import display
from IPython.utils.capture import capture_output
from tqdm.auto import tqdm

from labkit.errors import LabkitError

BUSY = "<i>computing… (training runs when a setting is not cached)</i>"
DEBOUNCE_S = 0.3
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CSS_CLASS = "labkit-interact"  # on the widget's box, so a browser test can tell it from other widgets


def choice(options, value=None, description: str = "") -> widgets.SelectionSlider:
    """A slider over a fixed grid (the profile's sweep values), so every stop can be cached."""
    options = list(options)
    return widgets.SelectionSlider(options=options, value=options[0] if value is None else value,
                                   description=description, continuous_update=False,
                                   style={"description_width": "initial"}, layout={"width": "420px"})


def dropdown(options, value=None, description: str = "") -> widgets.Dropdown:
    options = list(options)
    return widgets.Dropdown(options=options, value=options[0] if value is None else value,
                            description=description, style={"description_width": "initial"})


def _later(delay: float, fn: Callable[[], None]) -> None:
    """Call `fn` after `delay` seconds on the kernel's event loop; at once where none runs (plain Python)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        fn()
    else:
        loop.call_later(delay, fn)


def _as_outputs(captured) -> list[dict]:
    """nbformat outputs for what `plot_fn` printed and displayed (transient widgets such as progress bars dropped)."""
    outputs = [{"output_type": "stream", "name": name, "text": text}
               for name, text in (("stdout", captured.stdout), ("stderr", captured.stderr)) if text]
    for shown in captured.outputs:
        if WIDGET_VIEW in shown.data:
            continue
        data = {mime: base64.b64encode(value).decode() if isinstance(value, bytes) else value
                for mime, value in shown.data.items()}
        outputs.append({"output_type": "display_data", "data": data, "metadata": shown.metadata or {}})
    return outputs


@dataclass(repr=False)
class Wired:
    """One displayed widget: its controls, the live figure, and the errors its redraws raised (newest last)."""

    plot_fn: Callable[..., object]
    controls: dict[str, widgets.ValueWidget]
    ui: widgets.VBox = field(default_factory=widgets.VBox)
    figure: widgets.Output = field(default_factory=widgets.Output)
    status: widgets.HTML = field(default_factory=widgets.HTML)
    errors: list[str] = field(default_factory=list)
    pending: bool = False  # a redraw is scheduled and will read the controls when it runs

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def moved(self, _change=None) -> None:
        """A control moved: say so at once, and schedule one redraw unless one is already waiting."""
        self.status.value = BUSY
        if not self.pending:
            self.pending = True
            _later(DEBOUNCE_S, self.redraw)

    def redraw(self) -> None:
        """Draw the figure for the controls' current values, in place of the old one."""
        self.pending = False
        values = self.values()
        with capture_output() as captured:
            try:
                self.plot_fn(**values)
                failure = None
            except Exception:  # noqa: BLE001 — shown to the user instead of vanishing in ipywidgets
                failure = traceback.format_exc()
        outputs = _as_outputs(captured)
        if failure:
            self.errors.append(failure)
            outputs.append({"output_type": "stream", "name": "stderr",
                            "text": f"labkit: the plot failed for {values}:\n{failure}"})
        self.figure.outputs = tuple(outputs)
        if not self.pending:  # a move made during this redraw keeps its BUSY line
            self.status.value = ""

    def _ipython_display_(self) -> None:
        """Show nothing: `interact` displayed the widget already, and a notebook cell often ends with a
        bare `widgets.interact(...)`, whose result IPython would otherwise print (or show a second time)."""

    def __repr__(self) -> str:
        return f"<labkit widget: {', '.join(self.controls)}>"


DISPLAYED: list[Wired] = []  # every widget `interact` displayed in this kernel, in order


def positions(wired: Wired) -> list[dict]:
    """Every combination of the values `wired`'s controls offer, {control name: value}, in grid order."""
    from labkit.experiments import grid_configs

    # `_options_values`: the values, not the labels of (label, value) options
    return grid_configs({name: list(control._options_values) for name, control in wired.controls.items()})


def visit_every_position(displayed: list[Wired] | None = None, progress: bool = True) -> int:
    """Call each displayed widget's plot function at every position of its controls (figures discarded), so
    that each experiment a move can ask for is computed and cached. Returns the positions visited; a failing
    position raises a one-line LabkitError naming the widget and the values."""
    import matplotlib.pyplot as plt

    todo = [(wired, values) for wired in (DISPLAYED if displayed is None else displayed)
            for values in positions(wired)]
    for wired, values in tqdm(todo, desc="widget positions", disable=not progress):
        try:
            with capture_output():
                wired.plot_fn(**values)
        except Exception as error:  # noqa: BLE001 — named and re-raised as one line
            raise LabkitError(f"widget {wired.plot_fn.__name__} failed at {values}: "
                              f"{type(error).__name__}: {error}") from error
        finally:
            plt.close("all")
    return len(todo)


def interact(plot_fn: Callable[..., object], show_static: bool = True, **controls: widgets.ValueWidget) -> Wired:
    """Call `plot_fn(**defaults)` directly, then display `controls` with the live figure below them.

    `plot_fn` takes one keyword per control, draws its own figure and shows it (`plt.show()`).
    `show_static=False` draws the first figure like a move does: errors are kept, not raised.
    """
    wired = Wired(plot_fn=plot_fn, controls=dict(controls))
    if show_static:
        # What it prints goes to the cell as usual; what it displays becomes the widget's first figure.
        with capture_output(stdout=False, stderr=False) as captured:
            plot_fn(**wired.values())  # headless runs execute this and fail loudly on its errors
        wired.figure.outputs = tuple(_as_outputs(captured))
    else:
        wired.redraw()  # the same first figure, but an error is kept in wired.errors, not raised
    fallback = next((o for o in wired.figure.outputs if "image/png" in o.get("data", {})), {})
    wired.ui.children = [widgets.HBox(list(controls.values()), layout={"flex_flow": "row wrap"}),
                         wired.status, wired.figure]
    wired.ui.add_class(CSS_CLASS)
    for control in controls.values():
        control.observe(wired.moved, names="value")
    # One output: the live widget where a frontend renders widgets, else the static figure.
    bundle = {**fallback.get("data", {}), **wired.ui._repr_mimebundle_(),
              "text/plain": f"controls: {', '.join(controls)} (move them in JupyterLab)"}
    display(bundle, raw=True, metadata=fallback.get("metadata", {}))
    DISPLAYED.append(wired)
    return wired
