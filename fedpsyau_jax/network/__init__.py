"""The network of SPEC §2–§5 and its ops: keypoints, AU groups, ROI cutting, priors,
DPK-GAT, dropout and max-pool kernels, and the FED-PsyAU model that composes them.

Data flows one way: ``keypoints``/``au_groups``/``roi_patches``/``priors`` → ``gat`` →
``model``. Nothing here knows about training, federated learning or files.
"""
