"""BadNets end to end on the bundled digits in the ci profile, through the API and the CLI."""
import json
import subprocess
import sys

import torch

from labkit import cache, experiments


def test_badnets_at_ten_percent_works_and_repeats_exactly(tmp_cache):
    first = experiments.run("badnets", poison_fraction=0.1, seed=0, use_cache=False)
    assert first["attack_success_rate"] >= 0.9 and first["clean_accuracy"] >= 0.9
    assert first["poisoned_count"] == round(0.1 * 1347)
    second = experiments.run("badnets", poison_fraction=0.1, seed=0, use_cache=False)
    for key in ("clean_accuracy", "attack_success_rate", "attack_success_rate_classified"):
        assert first[key] == second[key]
    assert all(torch.equal(first["model_state"][k], second["model_state"][k]) for k in first["model_state"])


def test_unpoisoned_model_has_no_backdoor(tmp_cache):
    clean = experiments.run("badnets", poison_fraction=0.0, seed=0)
    assert clean["attack_success_rate"] < 0.2 and clean["clean_accuracy"] >= 0.9


def test_detection_finds_mislabelled_poison_far_above_chance(tmp_cache):
    found = experiments.run("detection", poison_fraction=0.05, seed=0)
    k = found["ks"].index(100)
    assert found["poisoned_found"][k] >= 3 * found["expected_at_random"][k]


def test_cli_json_then_cache_hit(tmp_cache):
    command = [sys.executable, "-m", "labkit", "run", "badnets", "--set", "poison_fraction=0.1", "--json"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["attack_success_rate"] >= 0.9 and result["clean_accuracy"] >= 0.9
    entries = list((tmp_cache / "ci").glob("badnets-*.pt"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert json.loads(second.stdout) == result
    assert entries[0].stat().st_mtime_ns == stamp  # served from the cache, not recomputed
    assert cache.read(entries[0])["poisoned_count"] == result["poisoned_count"]
