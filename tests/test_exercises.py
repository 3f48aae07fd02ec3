"""Self-checking exercises (labkit.exercises, issue 14): every check passes its solution in notebooks/solutions/,
says "not attempted yet" to the notebook's stub (and raises nothing), and fails a deliberately wrong answer
with the hint that fixes it. Every notebook comes with at least two checked exercises and one prediction."""
import ast
import math
import re
import runpy
from pathlib import Path

import jupytext
import numpy as np
import pytest
import torch
from IPython.utils.capture import capture_output

from labkit import exercises
from labkit.defenses import certified as cert

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SOLUTIONS = ROOT / "notebooks" / "solutions"
NAMES = sorted(exercises.EXERCISES)
CHECK = re.compile(r"exercises\.check\((\w+)\)")


def exercise_section(notebook: Path) -> str:
    """The code of the notebook's cells from its "Exercises" heading on."""
    cells = jupytext.read(notebook).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.M))
    return "\n".join(c.source for c in cells[start:] if c.cell_type == "code")


def solution_file(stem: str) -> Path:
    return SOLUTIONS / f"{stem}_solutions.py"


def solved(name: str):
    notebook = exercises.EXERCISES[name].notebook
    with capture_output():
        namespace = runpy.run_path(str(solution_file(notebook)))
    return namespace[name]


def stub(name: str):
    """The function as the notebook hands it to the student, defined from the notebook's own source."""
    notebook = ROOT / "notebooks" / f"{exercises.EXERCISES[name].notebook}.py"
    tree = ast.parse(exercise_section(notebook))
    (definition,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict = {}
    exec(compile(ast.Module([definition], []), f"{notebook.name}:{name}", "exec"), namespace)
    return namespace[name]


def run_check(fn, name=None):
    with capture_output() as out:
        verdict = exercises.check(fn, name)
    assert out.stdout.strip() == verdict.message  # printed once, exactly the verdict
    return verdict


# --- every notebook has its exercises, every exercise its notebook and its solution ---

def test_there_are_notebooks_and_exercises():
    assert len(NOTEBOOKS) >= 7 and len(NAMES) >= 14


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_two_checked_exercises_and_a_prediction(notebook):
    code = exercise_section(notebook)
    checked = CHECK.findall(code)
    assert len(set(checked)) >= 2, f"{notebook.name}: give it at least two exercises.check(fn) exercises"
    assert all(exercises.EXERCISES[n].notebook == notebook.stem for n in checked if n in exercises.EXERCISES)
    assert set(checked) == {e.name for e in exercises.for_notebook(notebook.stem)}, \
        "every exercise labkit.exercises declares for this notebook is checked in it, and nothing else"
    assert "exercises.predict(" in code, f"{notebook.name}: give it a predict-then-run question"
    assert solution_file(notebook.stem).exists(), f"write notebooks/solutions/{notebook.stem}_solutions.py"


def test_every_exercise_belongs_to_a_notebook():
    stems = {p.stem for p in NOTEBOOKS}
    assert {e.notebook for e in exercises.EXERCISES.values()} <= stems


def test_solutions_stay_out_of_the_notebook_glob():
    """make notebooks, test_notebooks and the course runner glob notebooks/*.py and NN_*.ipynb only."""
    assert all(p.parent == ROOT / "notebooks" for p in NOTEBOOKS)
    assert not list(SOLUTIONS.glob("*.ipynb"))


# --- solution ✓, stub "not attempted yet", wrong answer ✗ with its hint ---

@pytest.mark.parametrize("name", NAMES)
def test_the_solution_passes(name):
    verdict = run_check(solved(name))
    assert verdict and verdict.passed is True and verdict.message.startswith("✓"), verdict.message


@pytest.mark.parametrize("name", NAMES)
def test_the_notebooks_stub_is_not_attempted_yet_and_raises_nothing(name):
    verdict = run_check(stub(name))
    assert verdict.passed is None and not verdict
    assert exercises.NOT_ATTEMPTED in verdict.message


def _sign(p):
    return 2 * p - 1


def _lower_median_index(norms):
    v = torch.as_tensor(norms, dtype=torch.float64)
    med = v.median()
    return (v - med).abs() / (1.4826 * (v - med).abs().median())


# Deliberately wrong answers, written the way a student would, and a word the hint must contain.
WRONG = {
    "stamp_reduced": [
        (lambda x, mask, pattern, amplitude: (x + mask * _sign(pattern) * amplitude).clamp(0, 1), "±a/255"),
        (lambda x, mask, pattern, amplitude: x + mask * _sign(pattern) * amplitude, "0–1 pixel scale"),
        (lambda x, mask, pattern, amplitude: x + mask * _sign(pattern) * amplitude / 255, "clip"),
        (lambda x, mask, pattern, amplitude: (1 - mask) * x + mask * pattern, "±a/255"),
        (lambda x, mask, pattern, amplitude: (x + mask * pattern * amplitude / 255).clamp(0, 1), "subtract"),
    ],
    "detection_score": [
        (lambda probs, labels: probs.max(dim=1).values, "own label"),
        (lambda probs, labels: probs.gather(1, labels[:, None]), "wrong shape"),
        (lambda probs, labels: 1 - probs.gather(1, labels[:, None]).flatten(), "low score"),
    ],
    "scale_epsilon": [
        (lambda epsilon, norm, image_shape: epsilon if norm == "linf" else
         epsilon * math.sqrt(math.prod(image_shape) / 3072), "0–255"),
        (lambda epsilon, norm, image_shape: epsilon / 255, "√(d/3072)"),
        (lambda epsilon, norm, image_shape: epsilon / 255 * math.sqrt(math.prod(image_shape) / 3072), "ℓ∞"),
    ],
    "project": [
        (lambda delta, norm, epsilon: delta.clamp(-epsilon, epsilon) if norm == "linf"
         else delta * min(1.0, epsilon / float(delta.norm())), "each example"),
        (lambda delta, norm, epsilon: delta.clamp(-epsilon, epsilon) if norm == "linf"
         else delta * epsilon / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1).clamp_min(1e-12), "inside the ball"),
        (lambda delta, norm, epsilon: delta.clamp(-epsilon, epsilon) if norm == "linf"
         else delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
         * delta.flatten(1).norm(dim=1).clamp(max=epsilon).view(-1, 1, 1, 1), "NaN"),
    ],
    "clip_gradients": [
        (lambda grads, max_norm: grads * min(1.0, max_norm / float(grads.norm())), "each example"),
        (lambda grads, max_norm: grads.clamp(-max_norm, max_norm), "ℓ2 norm"),
        (lambda grads, max_norm: grads * max_norm / grads.norm(dim=1, keepdim=True), "already short"),
        (lambda grads, max_norm: grads / grads.norm(dim=1, keepdim=True)
         * grads.norm(dim=1, keepdim=True).clamp(max=max_norm), "NaN"),
    ],
    "privatize": [
        (lambda grads, max_norm, noise_multiplier, lot_size, noise:
         (grads.sum(0) + noise_multiplier * max_norm * noise) / lot_size, "clip every example first"),
        (lambda grads, max_norm, noise_multiplier, lot_size, noise:
         (solved("clip_gradients")(grads, max_norm).sum(0) + noise_multiplier * noise) / lot_size, "σ·C"),
        (lambda grads, max_norm, noise_multiplier, lot_size, noise:
         (solved("clip_gradients")(grads, max_norm).sum(0) + noise_multiplier * max_norm * noise) / len(grads),
         "expected lot size"),
    ],
    "sphere_support": [
        (lambda c, centre, radius: (radius * np.linalg.norm(c), centre + radius * c / np.linalg.norm(c)), "centre"),
        (lambda c, centre, radius: (float(c @ centre) + radius * np.linalg.norm(c), centre + radius * c), "unit"),
        (lambda c, centre, radius: float(c @ centre) + radius * np.linalg.norm(c), "return 2 values"),
    ],
    "worst_point": [
        (lambda theta, fset: _worst(theta, fset, sign=1.0), "support(−y·w)"),
        (lambda theta, fset: _worst(theta, fset, clamp=False), "max(0"),
        (lambda theta, fset: _worst(theta, fset, labels=(1.0,)), "both labels"),
    ],
    "anomaly_index": [
        (_lower_median_index, "torch.median"),
        (lambda norms: (norms - norms.quantile(0.5)).abs() / (norms - norms.quantile(0.5)).abs().quantile(0.5), "1.4826"),
        (lambda norms: (norms - norms.mean()).abs() / (1.4826 * (norms - norms.mean()).abs().quantile(0.5)), "mean"),
    ],
    "stamp_all": [
        (lambda x, masks, patterns: (1 - masks[None, :, None]) * x[:, None] + masks[None, :, None] * patterns[None],
         "wrong order"),
        (lambda x, masks, patterns: masks[:, None, None] * x[None] + (1 - masks[:, None, None]) * patterns[:, None],
         "(1 − m)⊙x + m⊙p"),
    ],
    "dormant_channels": [
        (lambda activations, percent: torch.argsort(activations, descending=True)[:round(percent / 100 * len(activations))],
         "LOWEST"),
        (lambda activations, percent: torch.argsort(activations)[:int(percent / 100 * len(activations))], "round"),
        (lambda activations, percent: torch.argsort(activations)[:round(percent * len(activations))], "0–100"),
    ],
    "strip_entropy": [
        (lambda probs: -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean(1), "log2"),
        (lambda probs: -(probs.mean(1) * torch.log2(probs.mean(1).clamp_min(1e-12))).sum(-1), "averaged prediction"),
        (lambda probs: -(probs * torch.log2(probs)).sum(-1).mean(1), "NaN"),
        (lambda probs: -(probs * torch.log2(probs.clamp_min(1e-12))).sum(-1), "wrong shape"),
    ],
    "two_task_gamma": [
        (lambda g1, g2: float((g2 - g1).flatten() @ g2.flatten() / ((g1 - g2).flatten() @ (g1 - g2).flatten())),
         "clip γ"),
        (lambda g1, g2: 1 - solved("two_task_gamma")(g1, g2), "weight of g1"),
    ],
    "blend_trigger": [
        (lambda x, pattern, alpha: alpha * x + (1 - alpha) * pattern, "weighs the *pattern*"),
        (lambda x, pattern, alpha: (x + alpha * pattern).clamp(0, 1), "replaces part"),
    ],
    "spectral_scores": [
        (lambda reps: (reps @ torch.linalg.svd(reps, full_matrices=False)[2][0]) ** 2, "centre"),
        (lambda reps: (reps - reps.mean(0)) @ torch.linalg.svd(reps - reps.mean(0), full_matrices=False)[2][0],
         "square"),
    ],
    "mgda_weights": [
        (lambda g_main, g_backdoor, loss_main, loss_backdoor: _weights(g_main, g_backdoor, 1.0, 1.0), "normalise first"),
        (lambda g_main, g_backdoor, loss_main, loss_backdoor:
         _weights(g_main, g_backdoor, loss_main * float(g_main.norm()), loss_backdoor * float(g_backdoor.norm())), "cap"),
        (lambda g_main, g_backdoor, loss_main, loss_backdoor:
         _weights(g_main, g_backdoor, min(10.0, loss_main * float(g_main.norm())),
                  min(10.0, loss_backdoor * float(g_backdoor.norm()))).flip(0), "(α0, α1)"),
    ],
}


def _worst(theta, fset, sign=-1.0, clamp=True, labels=(1.0, -1.0)):
    w, b = theta[:-1], theta[-1]
    best = None
    for label in labels:
        value, x = cert.support(sign * label * w, fset.sets[label])
        loss = 1 - label * b + value
        if best is None or loss > best[2]:
            best = (x, label, loss)
    return best[0], best[1], max(0.0, best[2]) if clamp else best[2]


def _weights(g1, g2, d1, d2):
    gamma = solved("two_task_gamma")(g1 / (d1 + 1e-5), g2 / (d2 + 1e-5))
    return torch.tensor([gamma, 1 - gamma], dtype=torch.float64)


def test_every_exercise_has_wrong_answers_to_fail():
    assert set(WRONG) == set(NAMES)


@pytest.mark.parametrize("name,index", [(n, i) for n in NAMES for i in range(len(WRONG[n]))])
def test_a_wrong_answer_fails_with_its_hint(name, index):
    wrong, hint = WRONG[name][index]
    verdict = run_check(wrong, name)
    assert verdict.passed is False and not verdict
    first, *rest = verdict.message.splitlines()
    assert first.startswith(f"✗ {name}: ") and hint in first, verdict.message
    assert len(rest) == 1 and rest[0].strip().startswith("failing input: ")  # ONE hint, and the input it failed on


# --- the checker itself ---

def test_an_exception_is_a_hint_not_a_crash():
    def stamp_reduced(x, mask, pattern, amplitude):
        return x + undefined_name  # noqa: F821

    verdict = run_check(stamp_reduced)
    assert verdict.passed is False and "raised NameError" in verdict.message


def test_a_branch_left_unwritten_is_named():
    def scale_epsilon(epsilon, norm, image_shape):
        if norm == "linf":
            raise NotImplementedError
        return epsilon / 255 * math.sqrt(math.prod(image_shape) / 3072)

    def project(delta, norm, epsilon):
        if norm == "l2":
            return solved("project")(delta, norm, epsilon)

    assert "one branch is still to write" in run_check(scale_epsilon).message
    assert "returned None" in run_check(project).message


def test_a_renamed_function_is_found_by_name_and_an_unknown_one_is_named():
    def my_entropy(probs):
        return solved("strip_entropy")(probs)

    assert run_check(my_entropy, "strip_entropy")
    verdict = run_check(my_entropy)
    assert verdict.passed is False and "no exercise is called 'my_entropy'" in verdict.message


def test_none_and_ellipsis_are_not_attempted():
    assert run_check(None, "project").passed is None
    assert run_check(lambda delta, norm, epsilon: ..., "project").passed is None


def test_a_student_function_that_edits_its_input_changes_nothing_else():
    def detection_score(probs, labels):
        out = probs[torch.arange(len(labels)), labels].clone()
        probs.zero_()  # vandalism: the reference must still see the original input
        return out

    assert run_check(detection_score)


def test_a_verdict_shows_nothing_more_in_a_notebook():
    with capture_output() as out:
        verdict = exercises.check(None, "project")
        verdict._ipython_display_()  # what IPython calls for a cell ending in check(fn)
    assert out.stdout.count("not attempted yet") == 1 and out.outputs == []


# --- predict, then run ---



def test_a_choice_question_reveals_the_reason_once_answered(shell):
    with capture_output() as out:
        p = exercises.predict("Does it rise?", choices=["falls", "stays", "rises"], answer="stays", reason="monotone")
    shown = out.outputs
    assert any("Does it rise?" in o.data.get("text/html", "") for o in shown)
    assert any("falls · stays · rises" in o.data.get("text/plain", "") for o in shown)  # headless: the choices as text
    assert not any("VBox" in o.data.get("text/plain", "") or "RadioButtons" in o.data.get("text/plain", "")
                   for o in shown)  # no widget repr
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in shown)
    assert p.value is None and "answer in the widget above" in p.recap() and p.feedback.value == ""
    (radio,) = p.controls
    radio.value = "rises"
    assert "✗" in p.feedback.value and "stays" in p.feedback.value and "monotone" in p.feedback.value
    radio.value = "stays"
    assert "✓ Right." in p.feedback.value and "monotone" in p.feedback.value and "✓ right" in p.recap()


def test_a_number_question_accepts_an_answer_within_the_tolerance(shell):
    with capture_output():
        p = exercises.predict("How many?", answer=10.0, tolerance=1.0, reason="k·P/N")
    box, button = p.controls
    box.value = "10,4"  # typed and entered in the box (a decimal comma is fine)
    assert p.value == 10.4 and "✓ Right." in p.feedback.value
    box.value = "ten"
    assert "Type a number" in p.feedback.value and p.value == 10.4
    assert "✓" in p.judge(10.5) and "✗" in p.judge(12) and "k·P/N" in p.feedback.value
    assert "12" in p.recap() and "10" in p.recap()


def test_a_question_is_asked_well_or_not_at_all(shell):
    with capture_output(), pytest.raises(ValueError):
        exercises.predict("?", choices=["a", "b"], answer="c", reason="")
    with capture_output(), pytest.raises(ValueError):
        exercises.predict("?", answer=1.0, reason="")


def test_an_output_of_the_wrong_kind_is_a_hint():
    verdict = run_check(lambda probs, labels: "0.5", "detection_score")
    assert verdict.passed is False and "expected a number or an array" in verdict.message
    verdict = run_check(lambda c, centre, radius: ("a", object()), "sphere_support")
    assert verdict.passed is False
