"""BadNets' claims (notebook 01): Neural Cleanse's Table II on MNIST and the thesis' chapter 2 / §7.3."""
from __future__ import annotations

from labkit import config
from labkit.claims import Claim, Setting, at_least, at_most, close_to, note, ratio_at_least, register, spread
from labkit.experiments import run

note("badnets", """
One-corner trigger at full amplitude, target class 0, a small CNN. Neural Cleanse's Table II is on MNIST; the
thesis' threshold (≈ 75 images) is on CIFAR-10 with a ResNet: the lab's threshold row searches the profile's
poison fractions for the smallest that reaches 90% attack success.
""")

POISON_FRACTION = 0.1  # of the whole training set, as notebook 01's headline run
WORKS = 0.9  # "a working backdoor": attack success ≥ 90%


def _run(s: Setting, **knobs) -> dict:
    return run("badnets", profile=s.profile, dataset=s.dataset, seed=s.seed, **knobs)


def infected(s: Setting) -> dict:
    poisoned, clean = _run(s, poison_fraction=POISON_FRACTION), _run(s, poison_fraction=0.0)
    return {"attack_success": poisoned["attack_success_rate"], "clean_accuracy": poisoned["clean_accuracy"],
            "clean_model_accuracy": clean["clean_accuracy"]}


register(Claim(
    id="badnets-nc-table2-asr", paper="badnets", notebook="01",
    claim="BadNets installs a backdoor that fires on nearly every triggered input",
    paper_value="attack success 99.90% (Neural Cleanse Table II, MNIST)",
    measure=infected, criterion=at_least("attack_success", 0.95),
    show=lambda v: f"attack success {spread(v['attack_success'])} at {POISON_FRACTION:.0%} poisoned",
))

register(Claim(
    id="badnets-nc-table2-accuracy", paper="badnets", notebook="01",
    claim="the infected model keeps the clean model's accuracy",
    paper_value="98.54% infected vs 98.88% clean (Neural Cleanse Table II, MNIST)",
    measure=infected, criterion=close_to("clean_accuracy", "clean_model_accuracy", 0.01),
    show=lambda v: f"{spread(v['clean_accuracy'])} infected vs {spread(v['clean_model_accuracy'])} clean",
))


def threshold(s: Setting) -> dict:
    """The smallest poisoned fraction of the profile's grid whose run reaches ≥ 90% attack success (1.0 when
    none does), and its image count."""
    fractions = [f for f in config.profile(s.profile).poison_fractions if f > 0]
    for fraction in fractions:
        result = _run(s, poison_fraction=fraction)
        if result["attack_success_rate"] >= WORKS:
            return {"smallest_working_fraction": fraction, "smallest_working_count": result["poisoned_count"]}
    return {"smallest_working_fraction": 1.0, "smallest_working_count": float("nan")}


register(Claim(
    id="badnets-poison-threshold", paper="badnets", notebook="01",
    claim="a few dozen poisoned images suffice: the backdoor works from ≤ 1% of the training set",
    paper_value="≈ 75 images (0.15% of CIFAR-10) reach a successful attack (thesis Fig. 2-1, §7.2)",
    measure=threshold,
    criterion=at_most("smallest_working_fraction", 0.01),
    why="the count, not the fraction, is what carries over: the bundled digits have 1,347 training images in the "
        "lab profile, so 1% is 13 images; the row lists the images needed per seed next to the thesis' ≈ 75",
    show=lambda v: (f"smallest fraction with ≥ {WORKS:.0%} success: {spread(v['smallest_working_fraction'])} "
                    f"(images: {', '.join(f'{c:g}' for c in v['smallest_working_count'])} per seed)"),
))


def detection(s: Setting) -> dict:
    """The thesis' simple detection (§7.3): poisoned samples among the lowest-ranked k, against chance."""
    result = run("detection", profile=s.profile, dataset=s.dataset, seed=s.seed)
    ks, found, chance = result["ks"], result["poisoned_found"], result["expected_at_random"]
    i = min(3, len(ks) - 1)  # k = 100 where the training set is large enough
    return {"k": ks[i], "found": found[i], "expected_at_random": chance[i], "poisoned": result["poisoned_count"]}


register(Claim(
    id="badnets-detection", paper="badnets", notebook="01",
    claim="a trusted model's lowest label probabilities are heavily biased towards BadNets' poison",
    paper_value="over 20 of 100 poisoned images among the lowest 300 of 50,000 (≈ 33× chance; thesis §7.3)",
    measure=detection,
    criterion=ratio_at_least("found", "expected_at_random", 5),
    show=lambda v: (f"{spread(v['found'], False, 1)} poisoned among the lowest {v['k'][0]:g} "
                    f"(chance {spread(v['expected_at_random'], False, 1)}; {v['poisoned'][0]:g} poisoned)"),
))
