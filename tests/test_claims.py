"""The papers' claims: criteria decide verdicts from per-seed numbers (synthetic here, no training), every
registered claim is complete, and a claim that cannot run says so instead of failing."""
from pathlib import Path

import pytest

from labkit import claims
from labkit.claims import Claim, Setting
from labkit.errors import DataMissingError, LabkitError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("criterion,values,expected", [
    (claims.at_least("a", 0.9), {"a": [0.95, 0.9]}, True),
    (claims.at_least("a", 0.9), {"a": [0.95, 0.8]}, False),
    (claims.at_most("a", 0.01), {"a": [0.01, 0.01]}, True),
    (claims.at_most("a", 0.01), {"a": [0.02, 0.01]}, False),
    (claims.below("a", 0.5), {"a": [0.49, 0.2]}, True),
    (claims.below("a", 0.5), {"a": [0.5, 0.5]}, False),
    (claims.exceeds_by("a", "b", 0.3), {"a": [0.8, 0.9], "b": [0.5, 0.6]}, True),
    (claims.exceeds_by("a", "b", 0.3), {"a": [0.8, 0.9], "b": [0.6, 0.6]}, False),
    (claims.close_to("a", "b", 0.01), {"a": [0.985], "b": [0.9888]}, True),
    (claims.close_to("a", "b", 0.01), {"a": [0.97], "b": [0.99]}, False),
    (claims.ratio_at_least("a", "b", 5), {"a": [22.0], "b": [0.6]}, True),
    (claims.ratio_at_least("a", "b", 5), {"a": [2.0], "b": [0.6]}, False),
    (claims.all_of(claims.at_least("a", 0.5), claims.below("b", 2, percent=False)), {"a": [0.6], "b": [1.5]}, True),
    (claims.all_of(claims.at_least("a", 0.5), claims.below("b", 2, percent=False)), {"a": [0.6], "b": [2.5]}, False),
])
def test_a_criterion_decides_from_the_seeds_numbers(criterion, values, expected):
    assert criterion(values) is expected
    assert claims.verdict(criterion, values) == ("holds" if expected else "differs")


def test_ordered_must_hold_on_every_seed_not_only_on_the_mean():
    order = claims.ordered("pgd", "latent", "baseline", strict=(False, True))
    assert order({"pgd": [0.9, 0.8], "latent": [0.5, 0.8], "baseline": [0.1, 0.2]})
    # the means keep the order (0.85 ≥ 0.6 > 0.15), but seed 1 has latent > pgd
    assert not order({"pgd": [0.9, 0.8], "latent": [0.3, 0.9], "baseline": [0.1, 0.2]})
    assert not order({"pgd": [0.9], "latent": [0.2], "baseline": [0.2]})  # '>' is strict
    assert order.text == "pgd ≥ latent > baseline on every seed"
    with pytest.raises(LabkitError, match="need 2 strictness flags"):
        claims.ordered("a", "b", "c", strict=(True,))


def test_no_numbers_is_not_run_and_spread_reads_mean_and_std():
    assert claims.verdict(claims.at_least("a", 0.5), {}) == "not run"
    assert claims.spread([0.9, 1.0]) == "95.0% ± 5.0%"
    assert claims.spread([0.9]) == "90.0%"
    assert claims.spread([2.0, 3.0], percent=False) == "2.50 ± 0.50"


def _synthetic(measure, datasets=("digits",)) -> Claim:
    return Claim(id="synthetic", paper="badnets", notebook="01", claim="c", paper_value="p", measure=measure,
                 criterion=claims.at_least("x", 0.5), datasets=datasets, why="a known reason")


def test_evaluate_measures_every_seed_and_fills_the_row():
    seen = []

    def measure(s: Setting) -> dict:
        seen.append(s)
        return {"x": 0.4 + 0.1 * s.seed}
    row = claims.evaluate(_synthetic(measure), "digits", "ci", [0, 1, 2])
    assert [s.seed for s in seen] == [0, 1, 2] and {s.profile for s in seen} == {"ci"}
    assert row["values"] == {"x": pytest.approx([0.4, 0.5, 0.6])}
    assert row["verdict"] == "holds" and row["why"] == ""
    assert row["lab_value"] == "x 50.0% ± 8.2%"
    assert set(row) >= {"id", "paper", "notebook", "claim", "paper_value", "lab_value", "criterion", "verdict"}
    assert claims.evaluate(_synthetic(lambda s: {"x": 0.1}), "digits", "ci", [0])["why"] == "a known reason"


def test_a_why_that_quotes_numbers_quotes_this_run_s_own():
    """A `why` may be a function of the row's per-seed values: a fixed text would quote another run's numbers."""
    from dataclasses import replace

    claim = replace(_synthetic(lambda s: {"x": 0.1 + 0.2 * s.seed}),
                    why=lambda v: f"x stays low: {claims.per_seed(v['x'])} on the seeds")
    assert claims.evaluate(claim, "digits", "ci", [0, 1])["why"] == "x stays low: 10% and 30% on the seeds"
    assert claims.evaluate(claim, "digits", "ci", [2])["why"] == ""  # 50%: holds, nothing to explain
    assert claims.per_seed([0.5, 0.25, 0.125], ".2f") == "0.50, 0.25 and 0.12"


def test_a_claim_off_its_datasets_or_without_its_data_is_not_run():
    row = claims.evaluate(_synthetic(lambda s: {"x": 1.0}), "mnist", "ci", [0])
    assert (row["verdict"], row["lab_value"], row["why"]) == ("not run", "—", "applies to digits")

    def missing(s):
        raise DataMissingError("mnist is not in data/; run `labkit data download mnist`")
    row = claims.evaluate(_synthetic(missing, ("mnist",)), "mnist", "ci", [0])
    assert row["verdict"] == "not run" and "labkit data download mnist" in row["why"]


def test_every_registered_claim_is_complete_and_names_a_real_notebook():
    everything = claims.all_claims()
    assert len({c.id for c in everything}) == len(everything)
    assert {c.paper for c in everything} == set(claims.PAPERS)  # every paper has its rows
    for c in everything:
        assert c.paper in claims.PAPERS and c.claim and c.paper_value and c.criterion.text, c.id
        assert list(NOTEBOOKS.glob(f"{c.notebook}_*.py")), f"{c.id}: no notebook {c.notebook}"
    papers = [c.paper for c in everything]
    assert papers == sorted(papers, key=claims.PAPERS.index)  # grouped in the papers' order
    with pytest.raises(LabkitError, match="unknown claim"):
        claims.get("no-such-claim")


def _amplitude_values(success_at_32: dict[float, float]) -> dict:
    values = {}
    for fraction, success in success_at_32.items():
        values[f"asr_a32_f{fraction:g}_e1200"] = [success]
        values[f"full_a32_f{fraction:g}_e1200"] = [1.0]
        values[f"asr_a16_f{fraction:g}_e1200"] = [0.0]
        values[f"full_a16_f{fraction:g}_e1200"] = [0.0]
    return values


def test_the_amplitude_claim_reads_amplitude_32_at_every_fraction_from_six_percent():
    criterion = claims.get("lc-amplitude-32").criterion
    assert criterion(_amplitude_values({0.015: 0.0, 0.06: 0.6, 0.25: 0.9}))  # below 6% does not count
    assert not criterion(_amplitude_values({0.06: 0.4, 0.25: 0.9}))
    from labkit.claims.label_consistent import boundary
    values = _amplitude_values({0.06: 0.4, 0.25: 0.9, 0.5: 1.0})
    assert boundary(values, "asr", 32, 1200) == "25%" and boundary(values, "full", 32, 1200) == "6%"
    assert boundary(values, "asr", 16, 1200) == "none"


def test_the_epsilon_and_evasion_claims_on_synthetic_numbers():
    grows = claims.get("lc-epsilon-grows").criterion
    assert grows({"asr_eps_0": [0.1], "asr_eps_300": [0.2], "asr_eps_1200": [0.6]})
    assert not grows({"asr_eps_0": [0.1], "asr_eps_300": [0.2], "asr_eps_1200": [0.3]})
    evasion = claims.get("blind-nc-evasion").criterion
    assert evasion({"anomaly_index": [1.2, 1.9], "backdoor": [0.95, 0.99]})
    assert not evasion({"anomaly_index": [1.2, 3.0], "backdoor": [0.95, 0.99]})  # mean 2.1
    assert not evasion({"anomaly_index": [1.2], "backdoor": [0.5]})
    loss = claims.get("lc-loss-stays-high").criterion
    assert loss({"clean": [0.01], "poisoned": [0.02], "poisoned_no_trigger": [3.0]})
    assert not loss({"clean": [0.01], "poisoned": [0.02], "poisoned_no_trigger": [0.05]})


def test_the_defense_claims_on_synthetic_numbers():
    """DP-SGD's drop in points, Neural Cleanse's false-positive share and neuron overlap, fine-pruning's two parts,
    STRIP's strict FAR bound and the certified ε = 0 identity decide as their criteria say."""
    dp = claims.get("dpsgd-four-corner").criterion
    assert dp({"asr_sigma0": [0.92], "asr_sigma1": [0.20]}) and not dp({"asr_sigma0": [0.92], "asr_sigma1": [0.5]})
    x = claims.get("dpsgd-x-trigger").criterion
    assert x({"asr_sigma0": [0.37, 0.3], "asr_sigma1": [0.14, 0.2]}) and not x({"asr_sigma0": [0.1, 0.3], "asr_sigma1": [0.1, 0.2]})
    fp = claims.get("nc-clean-false-positives").criterion
    assert fp({"flagged_share": [0.0, 0.0]}) and not fp({"flagged_share": [0.0, 1 / 3]})
    assert claims.get("nc-table5-neuron-iou").criterion({"neuron_iou": [0.807]})
    assert not claims.get("nc-table5-neuron-iou").criterion({"neuron_iou": [0.5]})
    aware = claims.get("fp-pruning-aware").criterion
    assert aware({"pruning_only": [0.9], "fine_pruning": [0.01]})
    assert not aware({"pruning_only": [0.1], "fine_pruning": [0.01]}) and not aware({"pruning_only": [0.9], "fine_pruning": [0.3]})
    strip = claims.get("strip-gao").criterion
    assert strip({"far": [0.0046]}) and not strip({"far": [0.01]})
    zero = claims.get("certified-alg1-epsilon-zero").criterion
    assert zero({"u_star": [0.0123], "clean_loss": [0.01231]}) and not zero({"u_star": [1.0], "clean_loss": [0.0123]})


def test_the_sigma_sweep_needs_every_setting_lower_at_sigma_one_and_a_falling_curve():
    from labkit.claims import dpsgd as dpc

    sweep = claims.get("dpsgd-sigma-sweep").criterion

    def values(asr):  # asr(setting, fraction, sigma) → one seed's attack success
        return {dpc.sweep_key(st, f, sg): [asr(st, f, sg)] for st in dpc.SETTINGS for f in dpc.SWEEP_POISON
                for sg in dpc.SWEEP_SIGMAS}
    assert sweep(values(lambda st, f, sg: 0.9 - 0.6 * sg))
    assert sweep(values(lambda st, f, sg: 0.9 - 0.6 * sg + (0.015 if sg == 1 / 3 else 0)))  # within 2 points
    assert not sweep(values(lambda st, f, sg: 0.9 - 0.6 * sg + (0.3 if sg == 2 / 3 else 0)))  # the curve rises (0.7 → 0.8)
    assert not sweep(values(lambda st, f, sg: 0.5 if st == "x" else 0.9 - 0.6 * sg))  # 'x' not lowered at σ = 1


def test_the_opacus_parity_claim_holds_from_pure_computation():
    row = claims.evaluate(claims.get("dpsgd-opacus-parity"), "digits", "ci", [0])
    assert row["verdict"] == "holds" and "2.91" in row["paper_value"] and "2.9" in row["lab_value"]
