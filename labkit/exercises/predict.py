"""*Predict, then run*: a question answered in a small widget before the cell that shows the answer.

`predict(question, choices=[...], answer=..., reason=...)` shows the question and radio buttons;
`predict(question, answer=number, tolerance=..., reason=...)` a number box and a "check" button. Answering
reveals right or wrong, the answer and the reason, below the widget; answering again re-judges. Nothing waits
for input: a headless run (nbmake, the course site) shows the question and the choices as text, and the next
cell's `recap()` says "answer in the widget above". The answer and the reason are computed by the notebook
from its own results, so they hold in every profile.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as widgets
from IPython.display import HTML, display


@dataclass(repr=False)
class Prediction:
    """One question; `value` is the student's latest answer (None until given)."""

    question: str
    answer: object
    reason: str
    choices: tuple | None = None
    tolerance: float | None = None
    value: object = None
    feedback: widgets.HTML = field(default_factory=widgets.HTML)
    controls: tuple = ()  # the widgets the student answers with

    def right(self, value) -> bool:
        if self.choices is not None:
            return value == self.answer
        return abs(float(value) - float(self.answer)) <= float(self.tolerance)

    def judge(self, value) -> str:
        """Record `value` as the answer; the HTML shown below the widget."""
        self.value = value
        verdict = ("✓ Right." if self.right(value) else
                   f"✗ Not quite: the answer is <b>{html.escape(self.shown_answer())}</b>.")
        self.feedback.value = f"<p>{verdict} {html.escape(self.reason)}</p>"
        return self.feedback.value

    def shown_answer(self) -> str:
        if self.choices is not None:
            return str(self.answer)
        return f"{float(self.answer):.4g} (± {float(self.tolerance):.2g} counts as right)"

    def recap(self) -> str:
        """One line for the cell after the question: what was predicted, or that nothing was yet."""
        if self.value is None:
            return "No prediction yet: answer in the widget above (in JupyterLab), then run this cell again."
        mark = "✓ right" if self.right(self.value) else f"✗ the answer is {self.shown_answer()}"
        return f"You predicted {self.value!r}: {mark}."

    def __repr__(self) -> str:
        return f"<prediction: {self.question[:60]}>"

    def _ipython_display_(self) -> None:
        """Nothing: `predict` displayed the question and its widget already."""


def predict(question: str, *, answer, reason: str, choices=None, tolerance: float | None = None) -> Prediction:
    """Show `question` with a choice (`choices` given) or a number box (`tolerance` given); return the
    `Prediction`. `answer` is one of `choices`, or the number; `reason` is revealed with the verdict."""
    if (choices is None) == (tolerance is None):
        raise ValueError("give either choices (a multiple-choice question) or tolerance (a number)")
    if choices is not None and answer not in choices:
        raise ValueError(f"the answer {answer!r} is not one of the choices {choices!r}")
    prediction = Prediction(question, answer, reason, tuple(choices) if choices is not None else None, tolerance)
    offered = ("Choices: " + " · ".join(map(str, prediction.choices))) if choices is not None else "Answer: a number."
    display(HTML(f"<p><b>Predict, then run.</b> {html.escape(question)}</p>"))
    if choices is not None:
        control = widgets.RadioButtons(options=list(prediction.choices), value=None, layout={"width": "max-content"})
        control.observe(lambda change: prediction.judge(change["new"]) if change["new"] is not None else None,
                        names="value")
        prediction.controls = (control,)
    else:
        box = widgets.Text(placeholder="your number", layout={"width": "160px"})
        button = widgets.Button(description="check", layout={"width": "80px"})
        box.continuous_update = False

        def submit(_=None):
            try:
                prediction.judge(float(box.value.replace(",", ".")))
            except ValueError:
                prediction.feedback.value = "<p>Type a number, e.g. 0.25.</p>"

        button.on_click(submit)
        box.observe(lambda change: submit(), names="value")
        prediction.controls = (box, button)
    answer_row = prediction.controls[0] if choices is not None else widgets.HBox(list(prediction.controls))
    ui = widgets.VBox([answer_row, prediction.feedback])
    bundle = {**ui._repr_mimebundle_(),
              "text/plain": f"{offered} (in JupyterLab you answer in a widget here; the reason appears once you answer)"}
    display(bundle, raw=True, metadata={"labkit": "prediction"})  # a static page can tell it from a plot's controls
    return prediction
