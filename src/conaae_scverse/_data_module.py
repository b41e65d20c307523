"""The training data of :class:`ConAAE` as a Lightning data module.

One place for the split into training and validation cells, the unpaired minibatch loaders
(each modality shuffled on its own), the loader of known pairs (anchor mode) and the sharding
of minibatches across the processes of a distributed run.

scvi-tools' ``DataSplitter`` splits one registered AnnData; here each modality is split on
its own, with its own cells, so the split is ours. Its loaders are scvi-tools' own
(``AnnDataLoader`` over each modality's ``AnnDataManager``).
"""

from __future__ import annotations

import logging
from itertools import cycle

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from ._compat import AnnDataLoader
from ._constants import MODALITIES
from ._data import ModalityData, dense_rows

logger = logging.getLogger(__name__)


def split_cells(
    modalities: dict[str, ModalityData],
    train_size: float,
    validation_size: float | None,
    rng: np.random.Generator,
    mod_names: dict[str, str],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sorted training and validation rows of each modality, drawn independently.

    Raises
    ------
    ValueError
        A modality would get fewer than 2 training cells (BatchNorm needs 2).
    """
    train, validation = {}, {}
    for mod, data in modalities.items():
        perm = rng.permutation(data.n_obs)
        n_train = max(1, round(train_size * data.n_obs))
        n_val = (
            data.n_obs - n_train
            if validation_size is None
            else round(validation_size * data.n_obs)
        )
        train[mod] = np.sort(perm[:n_train])
        validation[mod] = np.sort(perm[n_train : n_train + n_val])
        if n_train < 2:
            msg = (
                f"Modality {mod_names[mod]!r} has {n_train} training cell(s); a minibatch "
                "needs at least 2 (BatchNorm). Use more cells or a larger train_size."
            )
            raise ValueError(msg)
    return train, validation


class UnpairedLoader(DataLoader):
    """Iterates the per-modality loaders side by side; each shuffles on its own.

    An epoch is one pass over the largest loader; the others are cycled. Row ``i`` of one
    modality's minibatch is unrelated to row ``i`` of the other's: nothing is paired by order.
    ``cycled`` loaders (the anchor pairs') are always cycled: however many pairs there are,
    an epoch stays one pass over the cells.
    """

    def __init__(self, loaders: list[DataLoader], cycled: list[DataLoader] = ()):
        self.loaders = [*loaders, *cycled]
        self.largest = int(np.argmax([len(dl) for dl in loaders]))
        super().__init__(loaders[self.largest])

    def __len__(self) -> int:
        return len(self.loaders[self.largest])

    def __iter__(self):
        iterators = [
            iter(dl) if i == self.largest else cycle(dl) for i, dl in enumerate(self.loaders)
        ]
        return zip(*iterators, strict=False)


#: Keys of the known pairs' sample codes in an anchor minibatch.
ANCHOR_SAMPLE_KEYS = {mod: f"{mod}_batch" for mod in MODALITIES}


class ShardedBatchSampler:
    """Minibatches of dataset positions, split across the processes of a distributed run.

    Used instead of the default sampler under DDP (``strategy="ddp"`` / ``"ddp_spawn"``). The
    shuffled order of each epoch comes from ``seed`` and the epoch number, so it is the same
    on every process, and each process takes every ``world_size``-th minibatch of it. The
    number of minibatches per process is equal on all processes (the tail is dropped). The
    process group is read when iterating, i.e. inside ``Trainer.fit``, not at construction.
    Outside a distributed run it behaves like a plain (optionally shuffled) batch sampler.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.drop_last, self.seed, self.epoch = drop_last, seed, 0

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _n_batches(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return max(1, full + (rest > 0 and not self.drop_last))

    def __len__(self) -> int:
        _, world = self._rank_world()
        return max(1, self._n_batches() // world)

    def __iter__(self):
        rank, world = self._rank_world()
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        self.epoch += 1
        batches = [
            order[i : i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)
        ][: self._n_batches()]
        per_rank = max(1, len(batches) // world)
        for b in range(per_rank):
            yield batches[(b * world + rank) % len(batches)]


class ConAAEDataModule(LightningDataModule):
    """Unpaired minibatches of both modalities (and known pairs in anchor mode).

    Parameters
    ----------
    modalities
        The registered modalities, ``{"rna": ..., "atac": ...}``.
    train_indices, validation_indices
        Rows of each modality used for training and validation (see :func:`split_cells`).
    batch_size
        Cells per minibatch of each modality; capped at the smallest training set.
    anchor_pairs
        Known (rna_row, atac_row) pairs, shape (n_pairs, 2), or ``None``.
    distributed
        Whether the run has several processes (DDP): minibatches are then sharded.
    seed
        Seed of the distributed shuffling.
    """

    def __init__(
        self,
        modalities: dict[str, ModalityData],
        train_indices: dict[str, np.ndarray],
        validation_indices: dict[str, np.ndarray],
        batch_size: int,
        *,
        anchor_pairs: np.ndarray | None = None,
        distributed: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.modalities = modalities
        self.train_indices = train_indices
        self.validation_indices = validation_indices
        self.anchor_pairs = anchor_pairs
        self.distributed = distributed
        self.seed = seed
        self.batch_size = min(batch_size, *(len(i) for i in train_indices.values()))
        if self.batch_size < batch_size:
            logger.info(
                "Using minibatches of %d cells (fewer training cells than batch_size).",
                self.batch_size,
            )

    @property
    def has_validation(self) -> bool:
        """Whether each modality has at least 2 validation cells."""
        return all(len(i) >= 2 for i in self.validation_indices.values())

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per epoch of the larger modality, in one process."""
        largest = max(len(i) for i in self.train_indices.values())
        return max(1, largest // self.batch_size)

    def train_dataloader(self) -> UnpairedLoader:
        """Yield one minibatch of each modality per step (and of known pairs in anchor mode)."""
        loaders = [
            self._loader(mod, self.train_indices[mod], self.batch_size, shuffle=True, seed=i)
            for i, mod in enumerate(MODALITIES)
        ]
        anchors = self._anchor_loader()
        return UnpairedLoader(loaders, [] if anchors is None else [anchors])

    def val_dataloader(self) -> UnpairedLoader | list:
        """Minibatches of the validation cells of both modalities (none if too few)."""
        if not self.has_validation:
            return []
        size = min(max(self.batch_size, 512), *(len(i) for i in self.validation_indices.values()))
        return UnpairedLoader(
            [
                self._loader(mod, self.validation_indices[mod], size, shuffle=False)
                for mod in MODALITIES
            ]
        )

    def _loader(
        self, mod: str, indices: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0
    ) -> DataLoader:
        # drop_last keeps BatchNorm away from a last minibatch of a single cell.
        drop_last = shuffle and len(indices) > batch_size
        manager = self.modalities[mod].manager
        if self.distributed:
            # Under DDP each process takes its own share of every epoch's minibatches.
            sampler = ShardedBatchSampler(
                len(indices),
                batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                seed=self.seed + seed,
            )
            dataset = manager.create_torch_dataset(indices=indices)
            return DataLoader(dataset, sampler=sampler, batch_size=None)
        return AnnDataLoader(
            manager, indices=indices, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
        )

    def _anchor_loader(self) -> DataLoader | None:
        """Minibatches of known pairs whose both cells are training cells (anchor mode only)."""
        if self.anchor_pairs is None:
            return None
        pairs = self.anchor_pairs
        keep = np.isin(pairs[:, 0], self.train_indices[MODALITIES.RNA]) & np.isin(
            pairs[:, 1], self.train_indices[MODALITIES.ATAC]
        )
        pairs = pairs[keep]
        if len(pairs) < 2:
            logger.warning("Fewer than 2 known pairs among the training cells: anchor loss off.")
            return None
        rna, atac = self.modalities[MODALITIES.RNA], self.modalities[MODALITIES.ATAC]
        samples = {mod: torch.as_tensor(d.batches) for mod, d in self.modalities.items()}

        def collate(rows: list[int]) -> dict[str, torch.Tensor]:
            chosen = pairs[np.asarray(rows)]
            return {
                MODALITIES.RNA: dense_rows(rna.matrix, chosen[:, 0]),
                MODALITIES.ATAC: dense_rows(atac.matrix, chosen[:, 1]),
                ANCHOR_SAMPLE_KEYS[MODALITIES.RNA]: samples[MODALITIES.RNA][chosen[:, 0]],
                ANCHOR_SAMPLE_KEYS[MODALITIES.ATAC]: samples[MODALITIES.ATAC][chosen[:, 1]],
            }

        size = min(self.batch_size, len(pairs))
        return DataLoader(
            range(len(pairs)),
            batch_size=size,
            shuffle=True,
            drop_last=len(pairs) > size,
            collate_fn=collate,
        )
