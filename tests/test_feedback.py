"""Pseudo-relevance feedback's choice of terms: heaviest first, ties to the term met first,
whatever the batches its document frequencies are looked up in."""

from __future__ import annotations

import random

import numpy as np

from searchd.engines.whoosh.feedback import _heaviest_first


def test_terms_come_heaviest_first_with_ties_to_the_first_met_in_any_batch_size() -> None:
    rng = random.Random(4)
    for _ in range(200):
        size = rng.randint(0, 300)
        weights = np.array([rng.choice([0.5, 0.25, 0.125]) if rng.random() < 0.5 else rng.random()
                            for _ in range(size)])
        first = np.array(rng.sample(range(10 * size + 1), size), dtype=np.int64)
        expected = sorted(range(size), key=lambda i: (-weights[i], first[i]))
        batch = rng.randint(1, 50)
        batches = list(_heaviest_first(weights, first, batch))
        assert [int(i) for taken in batches for i in taken] == expected
        assert all(len(taken) >= min(batch, size) for taken in batches[:-1])
