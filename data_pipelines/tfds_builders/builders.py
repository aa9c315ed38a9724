"""One TFDS builder per dataset; all generation logic lives in ``me_builder.MEBuilder``.

Builder names (the TFDS registry names) equal the ``load_dataset`` names. The manual
instructions say what to put in ``<manual_dir>`` (default ``<data_dir>/downloads/manual``,
or ``tfds.download.DownloadConfig(manual_dir=...)``); the layouts are those of the datasets' official releases.
"""

from __future__ import annotations

from data_pipelines.tfds_builders.me_builder import MEBuilder, MEBuilderConfig

_LICENCE = "The release is licence-gated: request it from its owners; nothing of it is downloaded automatically."


class Casme3(MEBuilder):
    SOURCE = "casme3"
    DESCRIPTION = "CAS(ME)^3 Part A micro-expressions (onset->apex flow of the colour frames)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put the CAS(ME)^3 Part A release in <manual_dir>: the label sheet
    `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet `label`) and the frame folders
    `spNO.<k>/<task letter>/color/<frame>.jpg` (e.g. `spNO.1/b/color/175.jpg`)."""


class Dfme(MEBuilder):
    SOURCE = "dfme"
    DESCRIPTION = "DFME micro-expressions, 7 classes (anger, contempt, disgust, fear, happiness, sadness, surprise)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put in <manual_dir>: `DFME_data_coding.xlsx` and the part folders
    `USTC_MEv4_partA_sub0001_sub0015`, `..._partB_sub0016_sub0110`, `..._partC_sub0111_sub0300`,
    `..._partD_sub0301_sub0671_500fps` / `_200fps`, each holding
    `micro_static_aligned_croped/<emotion>/<Filename>/`."""


class Casme2(MEBuilder):
    SOURCE = "casme2"
    DESCRIPTION = "CASME II micro-expressions (MEGC 3-class mapping by default)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put in <manual_dir>: the coding sheet `CASME2-coding-*.xlsx` and the frame folders
    `sub01/EP02_01f/img46.jpg` (raw, or `reg_img46.jpg` cropped)."""


class Samm(MEBuilder):
    SOURCE = "samm"
    DESCRIPTION = "SAMM micro-expressions (MEGC 3-class mapping by default)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put in <manual_dir>: `SAMM_Micro_FACS_Codes_v2.xlsx` (sheet MICRO_ONLY) and the frame
    folders `006/006_1_2/006_05562.jpg`."""


class Smic(MEBuilder):
    SOURCE = "smic"
    DESCRIPTION = "SMIC-HS micro-expressions (3 classes, no AU labels, apex = middle frame)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put the SMIC `HS` folder in <manual_dir>:
    `HS/<subject>/micro/<negative|positive|surprise>/<clip>/image<NNNNNN>.bmp`."""


class Megc2019Composite(MEBuilder):
    SOURCE = "megc2019_composite"
    DESCRIPTION = "MEGC2019 composite (SMIC + CASME II + SAMM), 3 classes, 68 subjects."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put the published HTNet composite folder in <manual_dir> (what
    `load_dataset("megc2019_composite", root=...)` reads): the CSV
    `combined_3_class2_for_optical_flow.csv`, `flow28/<name> .png` (28x28 u/v/strain,
    note the space) and `apex_faces/<name>.jpg`. AU labels come from the real coding
    sheets in a sibling `annotations/` folder when present."""


class Disfa(MEBuilder):
    SOURCE = "disfa"
    DESCRIPTION = "DISFA spontaneous AU videos (27 subjects), used for AU supervision."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put in <manual_dir>: `ActionUnit_Labels/SN001/SN001_au<k>.txt` and
    `Videos_LeftCamera/LeftVideoSN001_comp.avi` (all 27 subjects)."""


class Ckplus(MEBuilder):
    name = "ckplus"  # not the automatic "ck_plus"
    SOURCE = "ckplus"
    DESCRIPTION = "CK+ posed expressions with FACS codes and 7 emotion labels."
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""{_LICENCE}
    Put in <manual_dir>: `cohn-kanade-images/`, `FACS/`, `Emotion/` and `Landmarks/`
    as the CK+ release ships them (e.g. `cohn-kanade-images/S005/001/S005_001_00000001.png`)."""


class Synthetic(MEBuilder):
    """The SYNTHETIC dataset of ``data_pipelines.synthetic`` (not real faces); needs no
    manual download. Configs choose its size; their ``load_kwargs`` go to ``make_synthetic``."""

    SOURCE = "synthetic"
    DESCRIPTION = "SYNTHETIC micro-expression flows (generated, not real faces)."
    BUILDER_CONFIGS = [
        MEBuilderConfig(name="default", description="12 subjects x 12 samples, 3 classes", load_kwargs={}),
        MEBuilderConfig(
            name="small",
            description="4 subjects x 3 samples, 3 classes (tests)",
            load_kwargs={"num_subjects": 4, "samples_per_subject": 3},
        ),
        MEBuilderConfig(
            name="seven_class",
            description="12 subjects x 14 samples, DFME 7 classes, AU labels for half the subjects",
            load_kwargs={"num_subjects": 12, "samples_per_subject": 14, "num_classes": 7, "au_label_fraction": 0.5},
        ),
    ]

    def _load_samples(self, dl_manager):
        # Generated, so neither the manual folder nor the real-data loaders are involved.
        from data_pipelines.synthetic import make_synthetic

        return make_synthetic(**self.builder_config.load_kwargs)


BUILDERS: dict[str, type[MEBuilder]] = {
    b.name: b for b in (Casme3, Dfme, Casme2, Samm, Smic, Megc2019Composite, Disfa, Ckplus, Synthetic)
}
assert all(name == b.SOURCE for name, b in BUILDERS.items())
