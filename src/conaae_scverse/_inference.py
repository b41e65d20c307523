"""Inference of a trained model: latents, labels, cell matches and the outputs it writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scvi.utils import track

from . import _data
from ._arguments import check_features, check_unknown_call
from ._calibration import agreement_temperature, softmax
from ._constants import MODALITIES, OUTPUT_KEYS
from ._data import dense_rows
from ._neighbors import PROGRESS_MIN_BLOCKS, nearest_neighbors, one_to_one_matching
from ._networks import sparse_csr

if TYPE_CHECKING:
    from mudata import MuData

Modality = Literal["rna", "atac"]


class InferenceMixin:
    """Embeddings, predicted labels, matches and written outputs of :class:`ConAAE`."""

    def _inference_matrix(self, mdata: MuData | None, modality: str):
        if modality not in MODALITIES:
            msg = f"modality must be 'rna' or 'atac', got {modality!r}."
            raise ValueError(msg)
        if mdata is None or mdata is self.mdata:
            data = self.modalities_[modality]
            return data.matrix, data.obs_names, data.batches
        _data.check_mudata(mdata)
        mod_name = self.setup_.mod_name(modality)
        adata = _data.get_modality(mdata, mod_name, modality)
        check_features(adata, self.modalities_[modality].var_names, mod_name)
        matrix = _data.get_matrix(adata, self.setup_.layer(modality), mod_name)
        if self.log1p_[modality] and _data.min_value(matrix) < 0:
            msg = (
                f"Modality {mod_name!r} has negative values, but the model log1p-transforms "
                "its input (it was trained on counts). Pass the same kind of values it was "
                "trained on."
            )
            raise ValueError(msg)
        samples = _data.batch_codes(
            adata, self.setup_.batch_key, self.batch_categories_[modality], mod_name
        )
        return matrix, adata.obs_names, samples

    @torch.inference_mode()
    def get_latent_representation(
        self, mdata: MuData | None = None, modality: Modality = "rna", *, batch_size: int = 4096
    ) -> np.ndarray:
        """Embedding of one modality's cells in the shared latent space.

        Parameters
        ----------
        mdata
            MuData with the same features as the training data (default: the training data).
        modality
            ``"rna"`` or ``"atac"``.
        batch_size
            Cells per forward pass.

        Returns
        -------
        Array of shape (n_cells, n_latent).
        """
        if (mdata is None or mdata is self.mdata) and modality in MODALITIES:
            z, _ = self._latents(None)[modality]
            return z.copy()
        matrix, _, samples = self._inference_matrix(mdata, modality)
        return self._encode(matrix, modality, samples, batch_size)

    def _encode(self, matrix, modality: str, samples: np.ndarray, batch_size: int) -> np.ndarray:
        return map_rows(
            self.module,
            matrix,
            modality,
            dense=self.module.encode,
            sparse_csr_rows=self.module.encode_sparse,
            width=self.module.n_latent,
            batch_size=batch_size,
            description=f"Encoding {modality.upper()} cells",
            samples=samples,
        )

    def _encode_scores(self, scores: np.ndarray, modality: str, samples: np.ndarray) -> np.ndarray:
        """Latents of principal-axis scores (what a projected modality's encoder reads)."""
        return map_rows(
            self.module,
            scores,
            modality,
            dense=self.module.encoder_net,
            sparse_csr_rows=self.module.encoder_net,
            width=self.module.n_latent,
            batch_size=4096,
            description=f"Encoding {modality.upper()} cells",
            samples=samples,
        )

    @torch.inference_mode()
    def predict(
        self,
        mdata: MuData | None = None,
        modality: Modality = "rna",
        *,
        soft: bool = False,
        min_confidence: float | None = None,
        unknown_label: str = "unknown",
        batch_size: int = 4096,
    ) -> np.ndarray | pd.DataFrame:
        """Predicted labels of one modality's cells, from the classifier on the latent.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        modality
            ``"rna"`` or ``"atac"``.
        soft
            Return class probabilities instead of labels. For a modality that trained
            without labels (with a label prior) they are softened to its agreement with the
            prior (``model.label_temperature_``, see the Outputs in the docs).
        min_confidence
            Call cells whose largest class probability is below this value ``unknown_label``
            instead of their most likely label, e.g. ``0.5`` (Seurat's and CellTypist's
            convention). The reference may lack some of the query's cell types; such cells
            tend to get lower confidence, but not always: see the Limits in the docs and
            ``benchmarks/unknown_types.py``. ``None`` (default) labels every cell.
        unknown_label
            Name of the "unknown" call; must not be one of the label categories.
        batch_size
            Cells per forward pass.

        Returns
        -------
        Array of shape (n_cells,) with label names, or with ``soft=True`` a DataFrame of shape
        (n_cells, n_labels) of probabilities indexed by ``obs_names``.
        """
        if not self.label_categories_:
            msg = "The model was set up without labels_key, so it cannot predict labels."
            raise ValueError(msg)
        check_unknown_call(min_confidence, unknown_label, self.label_categories_)
        matrix, obs_names, samples = self._inference_matrix(mdata, modality)
        z = self._encode(matrix, modality, samples, batch_size)
        probs = self._label_probabilities(z, modality)
        if soft:
            return pd.DataFrame(probs, index=obs_names, columns=self.label_categories_)
        labels = self._labels_from(probs, min_confidence, unknown_label)
        return np.asarray(labels.astype(object))

    def match_cells(
        self,
        mdata: MuData | None = None,
        *,
        method: Literal["nearest", "one_to_one"] = "nearest",
        metric: Literal["l1", "l2"] = "l1",
    ) -> dict[str, pd.DataFrame]:
        """Match every cell to a cell of the other modality in the latent space.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        method
            ``"nearest"``: each cell's nearest cell of the other modality (exact up to 50k x
            50k cells, approximate beyond). ``"one_to_one"``: a one-to-one assignment with the
            smallest total distance (equal cell numbers, at most 5,000 cells).
        metric
            ``"l1"`` (the paper) or ``"l2"``.

        Returns
        -------
        ``{"rna": DataFrame, "atac": DataFrame}``, each indexed by that modality's obs_names
        with columns ``conaae_match`` (obs_name in the other modality) and
        ``conaae_match_distance``.
        """
        if method not in ("nearest", "one_to_one"):
            msg = f"method must be 'nearest' or 'one_to_one', got {method!r}."
            raise ValueError(msg)
        return _match_latents(self._latents(mdata), method=method, metric=metric)

    def _latents(self, mdata: MuData | None) -> dict[str, tuple[np.ndarray, pd.Index]]:
        """Each modality's embedding and obs_names, encoded once for all the outputs.

        The training data's embeddings are kept until the weights change (training or
        loading), so writing results, matching and the joint AnnData encode them once.
        Callers must not modify the arrays in place.
        """
        own = mdata is None or mdata is self.mdata
        cached = getattr(self, "_latent_cache", None)
        if own and cached is not None and cached[0] == self.n_train_calls_:
            return cached[1]
        latents = {}
        scores = getattr(self, "_training_data", None) if own else None
        for mod in MODALITIES:
            matrix, names, samples = self._inference_matrix(mdata, mod)
            if scores is not None and self.module.is_projected(mod):
                # The scores computed for training: no second pass over the wide matrix.
                latents[mod] = self._encode_scores(scores[mod].matrix, mod, samples), names
            else:
                latents[mod] = self._encode(matrix, mod, samples, 4096), names
        if own:
            self._latent_cache = (self.n_train_calls_, latents)
        return latents

    def _labels_from(
        self, probs: np.ndarray, min_confidence: float | None, unknown_label: str
    ) -> pd.Categorical:
        """Most likely label of each row of ``probs``; ``unknown_label`` where not confident."""
        codes = probs.argmax(axis=1)
        categories = list(self.label_categories_)
        if min_confidence is not None:
            categories.append(unknown_label)
            codes = np.where(probs.max(axis=1) < min_confidence, len(categories) - 1, codes)
        return pd.Categorical.from_codes(codes, categories=categories)

    def _label_probabilities(self, z: np.ndarray, modality: str) -> np.ndarray:
        """Classifier probabilities, shape (n_cells, n_labels), of ``modality``'s latents ``z``.

        The logits are softened by the modality's ``label_temperature_`` (see
        :mod:`._calibration`; 1 unless the modality had no labels and a prior).
        """
        with torch.inference_mode():
            logits = self.module.classify(torch.as_tensor(z, device=self.device))
        temperature = getattr(self, "label_temperature_", {}).get(modality, 1.0)
        return softmax(logits.cpu().numpy(), temperature).astype(np.float32)

    def _calibrate_labels(self) -> None:
        """Fit the label temperature of the modality without labels, after training.

        Only a modality with a label prior gets one; every other, and every model trained
        without a prior (e.g. trained again after loading), keeps 1.
        """
        self.label_temperature_ = dict.fromkeys(MODALITIES, 1.0)
        if self.label_prior_ is None or not self.label_categories_:
            return
        z, _ = self._latents(None)[self.prior_modality_]
        with torch.inference_mode():
            logits = self.module.classify(torch.as_tensor(z, device=self.device)).cpu().numpy()
        temperature = agreement_temperature(logits, self.label_prior_.probabilities)
        self.label_temperature_[self.prior_modality_] = temperature

    def write_results(
        self,
        mdata: MuData | None = None,
        *,
        match: Literal["nearest", "one_to_one"] = "nearest",
        metric: Literal["l1", "l2"] = "l1",
        min_confidence: float | None = None,
        unknown_label: str = "unknown",
    ) -> None:
        """Write embeddings, predicted labels and cell matches into each modality.

        Written keys, in ``mdata.mod[rna_mod]`` and ``mdata.mod[atac_mod]``, and nothing else:

        - ``.obsm["X_conaae"]``: latent embedding, shape (n_cells, n_latent).
        - ``.obs["conaae_label"]`` (categorical) and ``.obs["conaae_label_confidence"]``
          (classifier probability of that label; softened, in the modality that had no
          labels, to the share of its cells whose label agrees with the label prior's), when
          labels were registered.
        - ``.obs["conaae_match"]``: obs_name of the matched cell of the other modality, and
          ``.obs["conaae_match_distance"]`` its latent distance.
        - ``.obs["conaae_prior_confidence"]``, in the modality that had no labels only, when a
          label prior was fitted (``model.label_prior_``) and ``mdata`` is the training data:
          the prior's largest label probability, before training. A low value flags a cell
          that the prior could not place among the reference's labels, e.g. of a type the
          reference lacks (``benchmarks/unknown_types.py``).

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        match
            ``"nearest"`` or ``"one_to_one"``, see :meth:`match_cells`.
        metric
            Distance of the matching, ``"l1"`` (the paper) or ``"l2"``.
        min_confidence, unknown_label
            Label cells below this confidence ``unknown_label``, see :meth:`predict`.
        """
        if match not in ("nearest", "one_to_one"):
            msg = f"match must be 'nearest' or 'one_to_one', got {match!r}."
            raise ValueError(msg)
        if self.label_categories_:
            check_unknown_call(min_confidence, unknown_label, self.label_categories_)
        target = self.mdata if mdata is None else mdata
        latents = self._latents(mdata)
        matches = _match_latents(latents, method=match, metric=metric)
        for mod in MODALITIES:
            adata = target.mod[self.setup_.mod_name(mod)]
            z, _ = latents[mod]
            adata.obsm[OUTPUT_KEYS.LATENT] = z.copy()  # the cache stays the model's own
            if self.label_categories_:
                probs = self._label_probabilities(z, mod)
                adata.obs[OUTPUT_KEYS.LABEL] = self._labels_from(
                    probs, min_confidence, unknown_label
                )
                adata.obs[OUTPUT_KEYS.LABEL_CONFIDENCE] = probs.max(axis=1).astype(np.float32)
            adata.obs[OUTPUT_KEYS.MATCH] = matches[mod][OUTPUT_KEYS.MATCH].to_numpy()
            adata.obs[OUTPUT_KEYS.MATCH_DISTANCE] = matches[mod][
                OUTPUT_KEYS.MATCH_DISTANCE
            ].to_numpy()
        if self.label_prior_ is not None and target is self.mdata:
            # The prior was fitted on the training cells only: no value for other data.
            adata = target.mod[self.setup_.mod_name(self.prior_modality_)]
            confidence = self.label_prior_.confidence.astype(np.float32)
            adata.obs[OUTPUT_KEYS.PRIOR_CONFIDENCE] = confidence

    def get_joint_adata(self, mdata: MuData | None = None) -> ad.AnnData:
        """One AnnData of all cells of both modalities in the shared latent space.

        Ready for ``sc.pp.neighbors(joint, use_rep="X_conaae")``, ``sc.tl.umap`` and
        ``sc.pl.umap(joint, color=["modality", ...])``.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).

        Returns
        -------
        AnnData with ``n_rna + n_atac`` cells (obs_names prefixed ``"<modality>:"``), obs
        columns ``modality``, ``cell`` (the original obs_name), the registered label column
        (when present), the ``batch_key`` column (when registered; NaN in a modality without
        it) and ``conaae_label`` (when labels were registered), and ``.obsm["X_conaae"]``.
        """
        target = self.mdata if mdata is None else mdata
        frames, latents = [], []
        for mod, (z, names) in self._latents(mdata).items():
            mod_name = self.setup_.mod_name(mod)
            latents.append(z)
            obs = pd.DataFrame(
                {"modality": mod_name, "cell": np.asarray(names, dtype=str)},
                index=[f"{mod_name}:{n}" for n in names],
            )
            key = self.setup_.labels_key
            source = target.mod[mod_name].obs
            if key is not None:
                obs[key] = source[key].astype("object").to_numpy() if key in source else np.nan
            batch_key = self.setup_.batch_key
            if batch_key is not None and batch_key != key:
                obs[batch_key] = (
                    source[batch_key].astype("object").to_numpy()
                    if batch_key in source
                    else np.nan
                )
            if self.label_categories_:
                obs[OUTPUT_KEYS.LABEL] = np.asarray(self.label_categories_, dtype=object)[
                    self._label_probabilities(z, mod).argmax(axis=1)
                ]
            frames.append(obs)
        obs = pd.concat(frames)
        obs["modality"] = pd.Categorical(
            obs["modality"], categories=[self.setup_.rna_mod, self.setup_.atac_mod]
        )
        for column in (self.setup_.labels_key, OUTPUT_KEYS.LABEL):
            if column is not None and column in obs:
                obs[column] = pd.Categorical(
                    obs[column].astype("object").where(obs[column].notna(), None),
                    categories=self.label_categories_ or None,
                )
        batch_key = self.setup_.batch_key
        if batch_key is not None and batch_key in obs:
            obs[batch_key] = pd.Categorical(obs[batch_key])
        joint = ad.AnnData(obs=obs)
        joint.obsm[OUTPUT_KEYS.LATENT] = np.concatenate(latents)
        return joint


def _match_latents(
    latents: dict[str, tuple[np.ndarray, pd.Index]],
    *,
    method: Literal["nearest", "one_to_one"],
    metric: Literal["l1", "l2"],
) -> dict[str, pd.DataFrame]:
    """Each cell's match in the other modality, as returned by :meth:`ConAAE.match_cells`."""
    out = {}
    for mod, other in ((MODALITIES.RNA, MODALITIES.ATAC), (MODALITIES.ATAC, MODALITIES.RNA)):
        (z, names), (z_other, names_other) = latents[mod], latents[other]
        if method == "one_to_one":
            idx, dist = one_to_one_matching(z, z_other, metric=metric)
        else:
            idx, dist = nearest_neighbors(z, z_other, k=1, metric=metric)
            idx, dist = idx[:, 0], dist[:, 0]
        out[mod] = pd.DataFrame(
            {
                OUTPUT_KEYS.MATCH: np.asarray(names_other)[idx],
                OUTPUT_KEYS.MATCH_DISTANCE: dist.astype(np.float32),
            },
            index=names,
        )
    return out


def map_rows(
    module: torch.nn.Module,
    matrix,
    modality: str,
    *,
    dense,
    sparse_csr_rows,
    width: int,
    batch_size: int,
    description: str,
    samples: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a module function to blocks of rows of a dense or sparse matrix, in eval mode.

    ``dense`` takes a dense float32 block, ``sparse_csr_rows`` a torch CSR block (sparse
    inputs are never densified); both also take ``modality``, and the block's sample codes
    when ``samples`` (one code per row) is given. Returns (n_rows, width) float32.
    """
    module.eval()
    device = next(module.parameters()).device
    out = np.empty((matrix.shape[0], width), dtype=np.float32)
    is_sparse = _data.is_sparse(matrix)
    if not is_sparse:
        # At most ~2**24 dense values (64 MB) per block, so wide inputs (e.g. 100k
        # features) never densify thousands of rows at once.
        batch_size = max(1, min(batch_size, (1 << 24) // max(1, matrix.shape[1])))
    starts = range(0, matrix.shape[0], batch_size)
    with torch.inference_mode():
        for start in track(
            starts, description=description, disable=len(starts) < PROGRESS_MIN_BLOCKS
        ):
            rows = np.arange(start, min(start + batch_size, matrix.shape[0]))
            extra = () if samples is None else (torch.as_tensor(samples[rows], device=device),)
            if is_sparse:
                block = _sparse_rows(matrix, slice(start, start + len(rows)))
                result = sparse_csr_rows(block.to(device), modality, *extra)
            else:
                result = dense(dense_rows(matrix, rows).to(device), modality, *extra)
            out[rows] = result.cpu().numpy()
    return out


def _sparse_rows(matrix, rows: np.ndarray | slice) -> torch.Tensor:
    """Rows of a sparse (or backed) matrix as a torch CSR tensor (float32, duplicates summed)."""
    block = sparse.csr_matrix(matrix[rows], dtype=np.float32)
    block.sum_duplicates()
    return sparse_csr(
        torch.from_numpy(block.indptr.astype(np.int64)),
        torch.from_numpy(block.indices.astype(np.int64)),
        torch.from_numpy(block.data),
        size=block.shape,
    )
