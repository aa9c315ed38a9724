"""PNG plots of a run: confusion matrix and learning curves (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm, class_names, path, title: str = "") -> Path:
    """Confusion matrix (rows true, columns predicted) with counts and row-normalised colour."""
    plt = _plt()
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.1 * len(class_names) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{norm[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_learning_curves(curves: dict[str, np.ndarray], path, title: str = "") -> Path:
    """Training loss curves: ``curves`` maps a name (e.g. "loss", "ce") to an (F, E)
    array of per-fold, per-epoch means; the fold mean is drawn bold, folds faint."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        c = np.asarray(curves[name], np.float64)
        epochs = np.arange(1, c.shape[1] + 1)
        for row in c:
            ax.plot(epochs, row, color="tab:blue", alpha=0.15, lw=0.8)
        ax.plot(epochs, np.nanmean(c, axis=0), color="tab:red", lw=2, label="mean over folds")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(plt, fig, path)


def _save(plt, fig, path) -> Path:
    """Lay out, write the PNG (creating its folder) and free the figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
