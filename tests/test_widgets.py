import ipywidgets

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
