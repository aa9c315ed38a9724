"""Centralised training on top of ``network``: losses and metrics (SPEC §6), the train
state and jitted steps, padded batch plans, protocols (LOSO / k-fold, SPEC §7),
fold-vmapped training with resumable checkpoints, run logs and plots.
"""
