"""The widget pattern every notebook uses.

1. The pure plotting function is called directly with the controls' default values, so a
   headless run (nbmake, CI) executes it, shows a static figure, and fails on its errors.
2. Then the controls are wired to it with `ipywidgets.interactive_output`. ipywidgets
   swallows exceptions raised in callbacks; `interact` catches them itself, prints the
   traceback where the figure would be, and keeps it in `Wired.errors`.

Experiments are cached, so moving a control back to a visited value replots at once.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as widgets
from IPython.display import display


@dataclass
class Wired:
    """The displayed controls and the errors their callbacks raised (newest last)."""

    ui: widgets.Widget
    controls: dict[str, widgets.ValueWidget]
    errors: list[str] = field(default_factory=list)


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


def interact(plot_fn: Callable[..., object], show_static: bool = True, **controls: widgets.ValueWidget) -> Wired:
    """Call `plot_fn(**defaults)` directly, then wire `controls` to it and display them.

    `plot_fn` takes one keyword per control, draws its own figure and shows it.
    """
    defaults = {name: control.value for name, control in controls.items()}
    if show_static:
        plot_fn(**defaults)  # headless runs execute this and fail loudly on its errors
    wired = Wired(ui=widgets.VBox(), controls=dict(controls))

    def visible(**values):
        try:
            plot_fn(**values)
        except Exception:  # noqa: BLE001 — shown to the user instead of vanishing
            message = traceback.format_exc()
            wired.errors.append(message)
            print(f"labkit: the plot failed for {values}:\n{message}")

    output = widgets.interactive_output(visible, controls)
    wired.ui = widgets.VBox([widgets.HBox(list(controls.values()), layout={"flex_flow": "row wrap"}), output])
    display(wired.ui)
    return wired
