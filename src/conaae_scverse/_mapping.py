"""Saving and loading a model, and mapping new samples onto a saved or trained one."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _data, _persistence, _registration
from ._compat import parse_device_args
from ._constants import MODALITIES

if TYPE_CHECKING:
    import anndata as ad
    from mudata import MuData

    from ._model import ConAAE


class MappingMixin:
    """:class:`~conaae_scverse.ConAAE`'s model files and query mapping (scArches)."""

    @classmethod
    def load_query_data(
        cls,
        mdata: MuData,
        reference: ConAAE | str | os.PathLike,
        *,
        gene_links: ad.AnnData | None = None,
        freeze_reference: bool = True,
    ) -> ConAAE:
        """Map cells of new samples onto a trained model (scArches, as scvi-tools models do).

        ``mdata`` holds the query: cells of new samples in one or both modalities (cells of
        the reference's samples may come along). The new model has the reference's weights and
        settings; each new sample gets its own shifts, started at the mean of the reference
        samples', and its own copy of each encoder's input layer, started at the encoder's
        (so that a feature-wise scaling of the new sample can be undone). By default
        these are the only parameters of the networks that embed and label cells that
        :meth:`train` then changes (the BatchNorm statistics stay too; the
        discriminator, which embeds nothing, keeps learning), so cells of the reference's
        samples keep their embeddings and labels. Train it briefly (e.g.
        ``query.train(max_epochs=20)``), then use it as any model: embeddings, labels with
        confidence and matches of the query's cells. Where the query has labels in one
        modality only, the model fits the label prior of its own cells (``label_prior``, as a
        new model does), so the unlabelled modality's new samples are steered the same way
        the reference's were.

        Parameters
        ----------
        mdata
            MuData of the query, with the reference's features and modality names and its
            ``batch_key`` column in every modality that has samples; set up here with the
            reference's setup arguments.
        reference
            A trained :class:`ConAAE` set up with ``batch_key``, or a directory it was saved to.
        gene_links
            Peak-gene links for the query's label prior (see :meth:`setup_mudata`). By default
            those the reference was set up with, when ``reference`` is a model in memory; links
            are not saved with a model, so pass them when mapping onto a saved one. Without
            links, an unlabelled modality's prior is the optimal-transport one.
        freeze_reference
            Train only the new samples' shifts (default); ``False`` fine-tunes every weight
            (the reference's embeddings then move).

        Returns
        -------
        A model of the query data.

        Examples
        --------
        >>> query = ca.ConAAE.load_query_data(new_mdata, model)
        >>> query.train(max_epochs=20)
        >>> query.write_results()
        """
        if isinstance(reference, MappingMixin):
            saved = _persistence.SavedModel(
                None, _persistence.model_settings(reference), reference.module.state_dict()
            )
        else:
            saved = _persistence.read_model(reference)
        settings = dict(saved.settings)
        setup = _data.SetupArgs(**settings["setup"])
        if setup.batch_key is None:
            msg = (
                "The reference model was set up without batch_key, so it has no samples to map "
                "new ones beside. Train the reference with setup_mudata(..., batch_key=...)."
            )
            raise ValueError(msg)
        if gene_links is None and isinstance(reference, MappingMixin):
            # The reference's own links fit the query too: it has the reference's features.
            registered = _registration.recall_registration(reference.mdata)
            gene_links = None if registered is None else registered.gene_links
        cls.setup_mudata(mdata, **setup.to_dict(), gene_links=gene_links)
        registration = _registration.recall_registration(mdata)
        known = {m: list(v) for m, v in settings.get("batch_categories", {}).items()}
        n_reference = {mod: max(1, len(known.get(mod, []))) for mod in MODALITIES}
        extended = {}
        for mod in MODALITIES:
            new = [c for c in registration.batch_categories[mod] if c not in known.get(mod, [])]
            if new and not known.get(mod):
                msg = (
                    f"The reference has no samples in modality {setup.mod_name(mod)!r} (no "
                    f"{setup.batch_key!r} column there when it was trained), so new samples "
                    f"{new[:5]} cannot be mapped beside them. Drop the column from this "
                    "modality of the query, or retrain with samples in both modalities."
                )
                raise ValueError(msg)
            extended[mod] = known.get(mod, []) + new
        # Samples trained with the reference share its encoders' input layers; those mapped
        # on (now or before) have their own.
        n_shared = _persistence.shared_input_batches(settings)
        settings.update(
            batch_categories=extended,
            n_reference_batches=n_reference,
            n_shared_input_batches=n_shared,
            history={},
            n_train_calls=0,
            is_trained=True,
        )
        model = cls.__new__(cls)
        model._build(
            mdata, saved.hyperparameters, _persistence.SavedModel(None, settings, {}), query=True
        )
        state = _persistence.merge_sample_shifts(saved.state)
        missing, unexpected = model.module.load_state_dict(state, strict=False)
        # New are the query's parameters, and empty stacks of earlier mapped-on input layers.
        empty = {k for k, v in model.module.state_dict().items() if not v.numel()}
        if unexpected or any(".query." not in key and key not in empty for key in missing):
            msg = (
                "The reference's weights do not fit a model of its own settings "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); save it again."
            )
            raise _persistence.ModelFileError(msg)
        model.module.start_query_parameters()
        if freeze_reference:
            model.module.freeze_reference()
        model.module.eval()
        return model

    # ------------------------------------------------------------------ persistence
    def save(self, dir_path: str, *, overwrite: bool = False) -> None:
        """Save the weights and settings to a directory (atomically).

        Writes ``model.pt`` (a state dict of tensors only) and ``settings.json`` (setup,
        hyperparameters, feature names, label categories, history). The data are not saved.
        The files go into a temporary directory next to ``dir_path`` that is then renamed into
        place, so a failed save leaves ``dir_path`` as it was and no temporary files behind.

        Parameters
        ----------
        dir_path
            Target directory; it must not exist unless ``overwrite=True``.
        overwrite
            Replace an existing directory, which must be a saved model or empty (so that
            unrelated files are never deleted).

        Raises
        ------
        FileExistsError
            ``dir_path`` exists and ``overwrite`` is false, or it is not a model directory.
        """
        _persistence.save_model(self, dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str, mdata: MuData, *, accelerator: str = "auto") -> ConAAE:
        """Load a model saved with :meth:`save` onto ``mdata``.

        No code from the directory is executed: weights are read with
        ``torch.load(weights_only=True)`` and settings from JSON.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData with the same features as the training data; set up automatically with the
            saved setup arguments if it was not set up.
        accelerator
            Where to put the model (``"auto"``: GPU when present).

        Returns
        -------
        The loaded model; it gives the same embeddings as the saved one.

        Raises
        ------
        FileNotFoundError
            ``dir_path`` or one of its two files does not exist.
        conaae_scverse.ModelFileError
            A :class:`ValueError`: a file is truncated, damaged, tampered with (e.g. a pickle
            that is not a plain tensor state dict), from another format or a newer version, or
            the weights do not fit the settings.
        ValueError
            ``mdata`` does not have the model's features.
        """
        saved = _persistence.read_model(dir_path)
        setup = saved.settings["setup"]
        existing = _registration.recall_setup(mdata)
        if existing is None or existing.to_dict() != setup:
            cls.setup_mudata(mdata, **setup)
        model = cls._restore(mdata, saved)
        _, _, device = parse_device_args(accelerator, "auto", return_device="torch")
        model.to_device(device)
        model.module.eval()
        return model
