"""The arena's training-data filters from outside the seeds (issue 19): spectral signatures and activation
clustering find a planted outlier direction / cluster in synthetic representations."""
import torch

from labkit.defenses import activation_clustering, representations, spectral


def planted(n_clean=200, n_poison=20, dim=32, shift=4.0, seed=0):
    """One label's representations: an isotropic Gaussian blob plus a few rows shifted along one direction."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(n_clean, dim, generator=g)
    direction = torch.randn(dim, generator=g)
    poison = torch.randn(n_poison, dim, generator=g) + shift * direction / direction.norm()
    return torch.cat([clean, poison]), torch.arange(n_clean, n_clean + n_poison)


def test_spectral_scores_are_highest_on_the_planted_direction():
    reps, poisoned = planted(shift=6.0)  # the poison's mean sits 6 noise-σ off the class mean, along one direction
    labels = torch.zeros(len(reps), dtype=torch.long)
    flagged = spectral.flag(reps, labels, epsilon=20 / 220)
    caught, _ = representations.removed_share(flagged, poisoned)
    assert caught >= 0.9
    assert int(flagged.sum()) == round(1.5 * 20 / 220 * 220)


def test_spectral_works_per_label_and_leaves_a_clean_label_its_quota_only():
    reps, poisoned = planted(shift=6.0)
    clean_reps, _ = planted(n_poison=0, seed=1)
    both = torch.cat([reps, clean_reps])
    labels = torch.cat([torch.zeros(len(reps)), torch.ones(len(clean_reps))]).long()
    flagged = spectral.flag(both, labels, epsilon=0.05)
    assert int(flagged[len(reps):].sum()) == round(1.5 * 0.05 * len(clean_reps))
    assert representations.removed_share(flagged, poisoned)[0] >= 0.5


def test_activation_clustering_removes_a_small_planted_cluster():
    reps, poisoned = planted(n_poison=30, shift=8.0)
    labels = torch.zeros(len(reps), dtype=torch.long)
    flagged = activation_clustering.flag(reps, labels)
    caught, clean_share = representations.removed_share(flagged, poisoned)
    assert caught >= 0.9 and clean_share <= 0.2


def test_activation_clustering_leaves_a_single_blob_alone():
    reps, _ = planted(n_poison=0)
    flagged = activation_clustering.flag(reps, torch.zeros(len(reps), dtype=torch.long))
    assert int(flagged.sum()) == 0


def test_embeddings_are_the_models_penultimate_layer():
    from labkit import models

    model = models.build("small-cnn", (1, 16, 16), 10, seed=0)
    x = torch.rand(5, 1, 16, 16)
    reps = representations.embeddings(model, x)
    assert reps.shape[0] == 5 and torch.allclose(reps, model.embed(x).flatten(1), atol=1e-6)


def test_activation_clustering_copes_with_units_that_never_fire():
    reps, poisoned = planted(n_poison=30, shift=8.0)
    reps = torch.cat([reps.relu(), torch.zeros(len(reps), 40)], dim=1)  # dead ReLU units: zero columns
    flagged = activation_clustering.flag(reps, torch.zeros(len(reps), dtype=torch.long))
    assert not torch.isnan(torch.as_tensor(activation_clustering.reduce(reps))).any()
    assert representations.removed_share(flagged, poisoned)[0] >= 0.9
