"""Centralised training on top of ``network``: losses and metrics, the train
state and jitted steps, padded batch plans, protocols (LOSO / k-fold),
fold-vmapped training with resumable checkpoints, run logs and plots.
"""
