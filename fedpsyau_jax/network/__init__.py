"""The network and its ops: ROI cutting, priors, DPK-GAT, dropout and max-pool kernels,
and the FED-PsyAU model that composes them (the keypoint and AU-group tables it uses are
plain data in ``fedpsyau_jax.core``).

Data flows one way: ``roi_patches``/``priors`` → ``gat`` → ``model``. Nothing here knows
about training, federated learning or files.
"""
