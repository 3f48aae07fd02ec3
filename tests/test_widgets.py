"""labkit.widgets without a browser (tests/browser/ drives JupyterLab itself)."""
import asyncio
import base64

import ipywidgets
from IPython.core.formatters import DisplayFormatter
from IPython.display import display
from IPython.utils.capture import capture_output

from labkit import widgets


def test_plot_runs_with_defaults_first_then_on_every_change():
    calls = []
    wired = widgets.interact(lambda a, b: calls.append((a, b)),
                             a=widgets.choice([1, 2, 3], 2, "a"), b=widgets.dropdown(["x", "y"], "y", "b"))
    assert calls[0] == (2, "y")  # the direct, headless-visible call
    wired.controls["a"].value = 3
    assert calls[-1] == (3, "y")
    assert isinstance(wired.ui, ipywidgets.VBox) and wired.errors == []


def test_callback_errors_are_kept_and_shown_not_swallowed(capsys):
    def plot(a):
        if a == 3:
            raise ValueError("bad setting")

    wired = widgets.interact(plot, a=widgets.choice([1, 3], 1, "a"))
    wired.controls["a"].value = 3
    assert len(wired.errors) == 1 and "ValueError: bad setting" in wired.errors[0]


def test_errors_with_default_values_fail_loudly():
    def broken(a):
        raise RuntimeError("plot is broken")

    try:
        widgets.interact(broken, a=widgets.choice([1], 1, "a"))
    except RuntimeError as error:
        assert "plot is broken" in str(error)
    else:
        raise AssertionError("the direct call must raise")


# --- one figure per widget, no repr, a move shows work at once and the figure never lags (issue 14) ---


def png(text) -> str:
    """A stand-in figure: a display bundle whose image names the values it was drawn for."""
    return base64.b64encode(f"figure {text}".encode()).decode()


def draw(calls):
    def plot(a, b="y"):
        calls.append((a, b))
        display({"image/png": png((a, b)), "text/plain": "<Figure>"}, raw=True)
    return plot




def figures(outputs) -> list[str]:
    return [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]


def test_one_output_carries_the_live_widget_and_its_static_figure(shell):
    calls = []
    with capture_output() as cell:
        wired = widgets.interact(draw(calls), a=widgets.choice([1, 2], 1, "a"))
    assert calls == [(1, "y")]  # the direct call, once
    [shown] = cell.outputs  # one output, not a static copy above a live one
    assert shown.data[widgets.WIDGET_VIEW]["model_id"] == wired.ui.model_id  # a frontend renders the widget
    assert shown.data["image/png"] == png((1, "y"))  # anything else renders the figure
    assert "VBox" not in shown.data["text/plain"]
    assert figures(wired.figure.outputs) == [png((1, "y"))]  # the live figure starts as the same one
    assert wired.figure in wired.ui.children and wired.status in wired.ui.children
    assert widgets.CSS_CLASS in wired.ui._dom_classes  # how tests/browser/ finds the section


def test_a_move_replaces_the_one_figure_and_adds_no_output_to_the_cell(shell):
    calls = []
    with capture_output() as cell:
        wired = widgets.interact(draw(calls), a=widgets.choice([1, 2], 1, "a"))
        wired.controls["a"].value = 2
    assert len(cell.outputs) == 1
    assert figures(wired.figure.outputs) == [png((2, "y"))]


def test_the_returned_object_prints_no_repr():
    wired = widgets.interact(lambda a: None, a=widgets.choice([1, 2], 1, "a"))
    assert DisplayFormatter().format(wired) == ({}, {})  # what a bare `widgets.interact(...)` at a cell's end shows
    assert "Wired(" not in repr(wired) and len(repr(wired)) < 80


def test_a_move_says_busy_at_once_and_moves_meanwhile_redraw_once_for_the_latest_values(monkeypatch):
    scheduled = []
    monkeypatch.setattr(widgets, "_later", lambda delay, fn: scheduled.append(fn))
    calls = []
    wired = widgets.interact(draw(calls), a=widgets.choice([1, 2, 3], 1, "a"), b=widgets.dropdown(["x", "y"], "y", "b"))
    wired.controls["a"].value = 2
    assert wired.status.value == widgets.BUSY and calls == [(1, "y")]  # shown before any work starts
    wired.controls["a"].value = 3
    wired.controls["b"].value = "x"
    assert len(scheduled) == 1  # the later moves join the pending redraw
    scheduled.pop()()
    assert calls == [(1, "y"), (3, "x")]  # one redraw, for the controls' values when it ran
    assert wired.status.value == ""


def test_in_a_kernel_the_redraw_runs_on_its_event_loop(monkeypatch):
    monkeypatch.setattr(widgets, "DEBOUNCE_S", 0.0)
    calls = []
    wired = widgets.interact(draw(calls), a=widgets.choice([1, 2, 3], 1, "a"))

    async def move_twice():
        wired.controls["a"].value = 2
        wired.controls["a"].value = 3
        assert calls == [(1, "y")] and wired.status.value == widgets.BUSY
        await asyncio.sleep(0.05)

    asyncio.run(move_twice())
    assert calls == [(1, "y"), (3, "y")] and wired.status.value == ""


def test_without_the_direct_call_errors_are_kept_not_raised():
    def broken(a):
        raise RuntimeError("plot is broken")

    wired = widgets.interact(broken, show_static=False, a=widgets.choice([1], 1, "a"))
    assert len(wired.errors) == 1 and "plot is broken" in wired.errors[0]
    assert any("plot is broken" in o.get("text", "") for o in wired.figure.outputs)


def test_visiting_every_position_calls_the_plot_at_each_combination_and_leaves_the_controls_alone():
    calls = []
    wired = widgets.interact(lambda a, b: calls.append((a, b)),
                             a=widgets.choice([1, 2, 3], 2, "a"), b=widgets.dropdown([("ex", "x"), ("why", "y")], "y", "b"))
    assert widgets.DISPLAYED[-1] is wired
    calls.clear()
    assert widgets.visit_every_position([wired], progress=False) == 6
    assert calls == [(a, b) for a in (1, 2, 3) for b in ("x", "y")]  # the values, not the labels
    assert wired.values() == {"a": 2, "b": "y"} and wired.status.value == ""


def test_a_position_that_fails_is_one_line_naming_the_widget_and_its_values():
    import pytest

    from labkit.errors import LabkitError

    def plot_setting(a):
        if a == 3:
            raise ValueError("no such run")

    wired = widgets.interact(plot_setting, a=widgets.choice([1, 3], 1, "a"))
    with pytest.raises(LabkitError, match=r"widget plot_setting failed at \{'a': 3\}: ValueError: no such run"):
        widgets.visit_every_position([wired], progress=False)
