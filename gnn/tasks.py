"""Tasks (loss and metrics from a batch) for the graph models, for :class:`sciml.train.Trainer`."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from sciml.train import Task


class NodeClassification(Task):
    """Transductive node classification on one graph (full batch) with boolean split masks.

    ``training_step`` is the cross-entropy on ``train_mask``; ``validation_step`` reports ``loss`` and ``acc`` on
    ``val_mask`` (logged as ``val_loss``, ``val_acc``) and ``train_acc``, ``test_acc`` on the other masks (the Planetoid protocol: report test accuracy at the best validation
    epoch). The model is called as ``model(data.x, data.edge_index)``.
    """

    def training_step(self, model, batch):
        out = model(batch.x, batch.edge_index)
        return {"loss": F.cross_entropy(out[batch.train_mask], batch.y[batch.train_mask])}

    @torch.no_grad()
    def validation_step(self, model, batch):
        out = model(batch.x, batch.edge_index)
        pred = out.argmax(dim=-1)
        correct = pred == batch.y
        metrics = {"loss": F.cross_entropy(out[batch.val_mask], batch.y[batch.val_mask]),
                   "acc": correct[batch.val_mask].float().mean()}
        for split in ("train", "test"):
            mask = getattr(batch, f"{split}_mask", None)
            if mask is not None and bool(mask.any()):
                metrics[f"{split}_acc"] = correct[mask].float().mean()
        return metrics
