import math

import pytest
import torch

from labkit import metrics
from labkit.errors import LabkitError

Y = torch.tensor([0, 0, 1, 2, 3])
CLEAN = torch.tensor([0, 1, 1, 0, 3])  # image 1 (label 0) is misclassified; image 3 classified as 0
TRIGGERED = torch.tensor([0, 0, 0, 0, 3])


def test_asr_excluding_images_labelled_target():
    # eligible: labels != 0 → images 2, 3, 4; triggered to 0: images 2, 3
    assert metrics.asr_from_predictions(Y, CLEAN, TRIGGERED, 0, "labelled") == pytest.approx(2 / 3)


def test_asr_excluding_images_classified_target():
    # eligible: clean prediction != 0 → images 1, 2, 4; triggered to 0: images 1, 2
    assert metrics.asr_from_predictions(Y, CLEAN, TRIGGERED, 0, "classified") == pytest.approx(2 / 3)
    # the definitions differ: image 3 counts only in the first, image 1 only in the second
    assert metrics.asr_from_predictions(Y, CLEAN, torch.tensor([0, 0, 1, 0, 3]), 0, "labelled") == pytest.approx(1 / 3)
    assert metrics.asr_from_predictions(Y, CLEAN, torch.tensor([0, 0, 1, 0, 3]), 0, "classified") == pytest.approx(1 / 3)
    assert metrics.asr_from_predictions(Y, CLEAN, torch.tensor([0, 1, 0, 0, 3]), 0, "labelled") == pytest.approx(2 / 3)
    assert metrics.asr_from_predictions(Y, CLEAN, torch.tensor([0, 1, 0, 0, 3]), 0, "classified") == pytest.approx(1 / 3)


def test_asr_with_nothing_eligible_is_nan_and_bad_definition_raises():
    assert math.isnan(metrics.asr_from_predictions(torch.zeros(3, dtype=torch.long), None, torch.zeros(3), 0))
    with pytest.raises(LabkitError, match="labelled, classified"):
        metrics.asr_from_predictions(Y, CLEAN, TRIGGERED, 0, "both")


def test_attack_success_rate_on_a_model():
    class AlwaysTriggered(torch.nn.Module):  # says "9" when the corner pixel is lit, else the true-ish "1"
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 1] = 0.5
            out[:, 9] = x[:, 0, -2, -2]
            return out
    from labkit import triggers
    trig = triggers.single_pixel((1, 8, 8))
    x, y = torch.zeros(4, 1, 8, 8), torch.tensor([1, 1, 9, 2])
    assert metrics.attack_success_rate(AlwaysTriggered(), x, y, trig, 9) == 1.0
    assert metrics.clean_accuracy(AlwaysTriggered(), x, y) == 0.5


def test_frr_far_counts_each_side():
    benign = torch.tensor([0.1, 0.5, 0.9, 1.2])
    trojan = torch.tensor([0.05, 0.2, 0.6])
    assert metrics.frr_far(benign, trojan, 0.3) == (pytest.approx(0.25), pytest.approx(1 / 3))


def test_anomaly_index_uses_the_consistency_constant():
    norms = torch.tensor([10.0, 11.0, 12.0, 13.0, 2.0])
    # median 11, absolute deviations 1, 0, 1, 2, 9 → MAD 1 → scaled 1.4826
    index = metrics.anomaly_index(norms)
    assert index[4] == pytest.approx(9 / 1.4826)
    assert index[1] == pytest.approx(0.0)
    assert metrics.flag_small_outliers(norms) == [4]
    # an equally extreme *large* norm is not flagged
    assert metrics.flag_small_outliers(torch.tensor([10.0, 11.0, 12.0, 13.0, 20.0])) == []


def test_anomaly_index_median_of_an_even_count_averages_the_middle_two():
    import numpy as np

    norms = torch.tensor([6.1, 21.8, 25.0, 30.0, 31.0, 33.0, 35.0, 38.0, 40.0, 43.3])
    median = np.median(norms.numpy())  # 32.0, between 31 and 33
    mad = 1.4826 * np.median(np.abs(norms.numpy() - median))
    assert metrics.anomaly_index(norms)[0] == pytest.approx(abs(6.1 - median) / mad)
