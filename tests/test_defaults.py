"""Defaults that show the lesson: every registered experiment, run with its defaults in the `ci` profile, shows
the effect its notebook teaches — an attack that succeeds, a defense that lowers it — or the case below names
the experiment and says why it does not. (All of them together take about half a minute in `ci`.)
"""
import pytest

from labkit import experiments


def run(name, **overrides):
    return experiments.run(name, **overrides)


def lesson_badnets(r):
    assert r["attack_success_rate"] > 0.9 and r["clean_accuracy"] > 0.9  # a backdoor at no visible cost


def lesson_detection(r):
    assert r["poisoned_found"][0] >= 0.8 * r["ks"][0]  # the lowest-scoring samples are mostly the poison


def lesson_blind(r):
    assert r["backdoor_accuracy"] > 0.9 and r["backdoor_accuracy_clean"] < 0.1
    assert abs(r["main_accuracy_backdoored"] - r["main_accuracy_clean"]) < 0.05


def lesson_certified(r):
    assert r["upper_bound_exact"] >= r["attack_train_loss"] >= r["clean_train_loss"]  # the bound holds the attack


def lesson_defense_pipeline(r):
    assert r["trojan_rejected"] > 0.9 and r["clean_correct"] > 0.8


def lesson_dpsgd(r):
    plain = run("dpsgd", noise_multiplier=0.0)
    assert r["config"]["noise_multiplier"] > 0
    # DP-SGD's noise blunts the rare poison (the thesis' DP chapter measures the "classified" attack success)
    assert r["attack_success_rate_classified"] < plain["attack_success_rate_classified"] - 0.2


def lesson_dpsgd_pretrain(r):
    assert r["test_accuracy"] > 0.9  # a helper: the public model the frozen procedure starts from


def lesson_dpsgd_reference(r):
    assert r["clean_accuracy"] > 0.9  # a helper: the unpoisoned reference model


def lesson_fine_pruning(r):
    assert r["original_attack_success_rate"] > 0.9
    assert r["attack_success_rate"] < 0.2 and r["attack_success_rate"] < r["pruned_attack_success_rate"] - 0.2


def lesson_fine_pruning_width(r):
    assert r["original_attack_success_rate"] > 0.9  # each half alone leaves more of the backdoor than both together
    assert r["attack_success_rate"] < min(r["pruned_attack_success_rate"], r["finetuned_attack_success_rate"]) - 0.2


def lesson_pruning_curve(r):
    asr = r["attack_success_rate"]
    assert asr[0] > 0.9 and min(asr) < asr[0] - 0.2  # pruning dormant channels removes the backdoor


def lesson_pruning_aware(r):
    assert r["attack_success_rate"] > 0.3  # the decoys let the backdoor survive fine-pruning


def lesson_label_consistent(r):
    baseline = run("label-consistent", method="none")
    assert r["attack_success_rate"] > baseline["attack_success_rate"] + 0.1  # hard images make the trigger stick


def lesson_label_consistent_detection(r):
    assert r["found_badnets"][2] > r["found_label_consistent"][2]  # correct labels hide the poison from the scheme


def lesson_neural_cleanse(r):
    assert r["target_label"] in r["flagged_labels"] and r["anomaly_index"] > 2
    assert r["attack_success_rate_before"] > 0.9 and r["attack_success_rate"] < 0.1


def lesson_strip(r):
    assert r["far"] < 0.1 and r["frr"] < 0.15


def lesson_strip_entropies(r):
    assert r["trojan_mean_entropy"] < 0.5 * r["benign_mean_entropy"]  # a trigger dominates every blend


def lesson_arena_attack(r):
    assert r["attack_success_rate"] > r["clean_model_rate"] + 0.4  # BadNets is planted (the matrix's first row)


def lesson_arena_cell(r):
    assert r["applicable"] and r["attack_success_rate"] > 0.9  # the undefended BadNets cell: the backdoor is there


def lesson_arena(r):
    cells = {(c["attack"], c["defense"]): c for c in r["cells"]}
    assert min(c.get("attack_success_rate", 1) for (a, d), c in cells.items() if a == "badnets" and d != "none") < 0.2
    planted = [a for a in r["attacks"] if cells[(a, "none")]["attack_success_rate"] > 0.5]
    # not uniform: some defense fails (≥ 50% success left) on some planted attack
    assert any(cells[(a, d)].get("attack_success_rate", 0) >= 0.5 for a in planted for d in r["defenses"] if d != "none")


def lesson_neural_cleanse_analysis(r):
    # Table III: the reversed trigger fires the backdoor neurons far above clean inputs, as the original does
    assert r["reversed_activation"] > 2 * r["clean_activation"] and r["original_activation"] > 2 * r["clean_activation"]


def lesson_trigger_strength(r):
    # a faint trigger takes only when made stronger: the strongest setting (amplified at test time where the
    # attack has an amplitude) beats the paper's setting by 10 points
    strongest = max(v for v in (r["attack_success_rate"][-1], r["attack_success_rate_amplified"][-1]) if v is not None)
    assert strongest >= r["attack_success_rate"][0] + 0.1


LESSONS = {
    "trigger-strength": lesson_trigger_strength,
    "arena": lesson_arena, "arena-attack": lesson_arena_attack, "arena-cell": lesson_arena_cell,
    "badnets": lesson_badnets, "detection": lesson_detection, "blind": lesson_blind, "certified": lesson_certified,
    "defense-pipeline": lesson_defense_pipeline, "dpsgd": lesson_dpsgd, "dpsgd-pretrain": lesson_dpsgd_pretrain,
    "dpsgd-reference": lesson_dpsgd_reference, "fine-pruning": lesson_fine_pruning,
    "fine-pruning-width": lesson_fine_pruning_width, "pruning-curve": lesson_pruning_curve,
    "pruning-aware": lesson_pruning_aware, "label-consistent": lesson_label_consistent,
    "label-consistent-detection": lesson_label_consistent_detection, "neural-cleanse": lesson_neural_cleanse,
    "neural-cleanse-analysis": lesson_neural_cleanse_analysis,
    "strip": lesson_strip, "strip-entropies": lesson_strip_entropies,
}
DOES_NOT_SHOW = {
    "fine-pruning-loop": "channel pruning in 5% rounds with fine-tuning, stopped at a 1-point accuracy loss, stops "
                         "after the first rounds and leaves the backdoor (about 99% attack success in ci); one "
                         "80% cut then fine-tuning (`fine-pruning`) removes it",
    "fine-pruning-weights": "the report's signed-weight threshold min + (max − min)·5% reaches only the most negative "
                            "weights (0.04% of conv weights in ci), and a defender who stops at a 1-point accuracy "
                            "loss keeps one round: the backdoor stays (99% attack success) — notebook 06 shows why",
}


def test_every_experiment_has_a_lesson_or_a_reason():
    assert sorted([*LESSONS, *DOES_NOT_SHOW]) == experiments.names()


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_the_defaults_show_the_lesson(tmp_cache, name):
    LESSONS[name](run(name))


@pytest.mark.parametrize("name", sorted(DOES_NOT_SHOW))
def test_an_experiment_whose_defaults_do_not_show_it_says_why(tmp_cache, name):
    result = run(name)
    assert result["attack_success_rate"] > 0.5, f"{name} now removes the backdoor: move it to LESSONS"
