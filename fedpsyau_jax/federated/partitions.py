"""Client partitions of one dataset: which samples each client owns.

    partition_clients(samples, scheme, num_clients=None, seed=0, mapping=None)
        -> list of (name, sample indices) per client

Schemes:
- ``equal_subjects``: subjects shuffled with ``seed`` and dealt round-robin into
  ``num_clients`` clients — equal numbers of subjects (±1), as in the paper;
- ``by_dataset``: one client per source dataset (``samples.dataset``), as in the
  reference code (MEGC2019 composite → CASME II, SAMM, SMIC);
- ``per_subject``: every subject is its own client (68 on the MEGC2019 composite), so
  client-level differential privacy is per-person privacy (``federated.privacy``);
- ``mapping``: a user dict {subject or dataset name: client name}; every sample must be
  covered (an unmapped subject is an error, not silently dropped).
A subject never spans two clients.
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("equal_subjects", "by_dataset", "per_subject", "mapping")


def partition_clients(
    samples, scheme: str, num_clients: int | None = None, seed: int = 0, mapping: dict | None = None
) -> list[tuple[str, np.ndarray]]:
    subjects = np.asarray(samples.subject).astype(str)
    if scheme == "equal_subjects":
        if not num_clients or num_clients < 1:
            raise ValueError("partition equal_subjects needs num_clients >= 1")
        uniq = np.unique(subjects)
        if len(uniq) < num_clients:
            raise ValueError(f"partition equal_subjects: {len(uniq)} subjects cannot fill {num_clients} clients")
        order = np.random.default_rng(seed).permutation(uniq)
        owner = {s: i % num_clients for i, s in enumerate(order)}
        lab = np.array([owner[s] for s in subjects])
        return [(f"client{k}", np.nonzero(lab == k)[0]) for k in range(num_clients)]
    if scheme == "per_subject":
        people = sorted(np.unique(subjects))
        if num_clients and num_clients != len(people):
            raise ValueError(f"partition per_subject: data has {len(people)} subjects but num_clients={num_clients}")
        return [(str(s), np.nonzero(subjects == s)[0]) for s in people]
    if scheme == "by_dataset":
        ds = np.asarray(samples.dataset).astype(str)
        names = list(dict.fromkeys(ds.tolist()))  # first-appearance order
        if num_clients and num_clients != len(names):
            raise ValueError(
                f"partition by_dataset: data has {len(names)} datasets "
                f"({', '.join(names)}) but num_clients={num_clients}"
            )
        return [(n, np.nonzero(ds == n)[0]) for n in names]
    if scheme == "mapping":
        if not mapping:
            raise ValueError("partition mapping needs a non-empty mapping {subject|dataset: client}")
        ds = np.asarray(samples.dataset).astype(str)
        keys = [str(k) for k in mapping]
        mp = {str(k): str(v) for k, v in mapping.items()}
        client_of: list[str] = []
        for s, d in zip(subjects, ds):
            if s in mp:
                client_of.append(mp[s])
            elif d in mp:
                client_of.append(mp[d])
            else:
                raise ValueError(
                    f"partition mapping: subject {s!r} (dataset {d!r}) is not mapped; "
                    f"mapping keys: {', '.join(keys[:10])}"
                )
        client_arr = np.asarray(client_of)
        names = list(dict.fromkeys(mp.values()))
        out = [(n, np.nonzero(client_arr == n)[0]) for n in names]
        return [(n, i) for n, i in out if len(i)]
    raise ValueError(f"unknown partition scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
