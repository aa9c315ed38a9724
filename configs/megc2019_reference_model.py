"""The reference model: the composite recipe trained once on all 442 MEGC2019 samples.

    fedpsyau train --config=configs/megc2019_reference_model.py --workdir=runs/reference_model
    fedpsyau predict --checkpoint runs/reference_model/final_model --video clip.mp4 --onset 0 --apex 35

The data: the MEGC2019 composite (SMIC + CASME II + SAMM) and the CASME II / SAMM coding
sheets, laid out by ``fedpsyau data import-megc2019`` (docs: "Get the MEGC2019
composite") and found through ``FEDPSYAU_SHARED_DATA``. The exported model is
``<workdir>/final_model`` with its model card.

What the model is: a demonstration model, trained on three laboratory databases of
expressions that volunteers, mostly young adults, made while trying to hide them (they
watched emotional film clips and were asked to keep a neutral face), filmed under
controlled light and pose. It shows what the method learns from that
data and lets ``fedpsyau predict`` run on a real clip. What it is not: it has not been
validated on any other population, camera, setting or culture, and it must not be used
for lie detection or for any decision about a person (hiring, security, health,
education, law). Its accuracy on unseen people is estimated by the LOSO run of
configs/megc2019_composite_loso.py, not by this run (which tests on nobody).

Wall time, measured once: 6 min 37 s for the whole command (stage 1, then 20 epochs on
all 442 samples), composite inputs already cached, on a 2-core CPU machine that was
running another training job at the same time: an upper bound for such a machine.

Settings: those of configs/megc2019_composite_loso.py (chosen there on validation subjects
carved from training subjects), except:

- protocol.kind all — one fold that trains on every sample and tests on none; it is the
  model exported as final_model (export.final_model all_data, the recipe's own).
- pretrain.subject_folds 0 — stage 1 (AU pre-training) runs inside the all-data fold, on
  the AU-labelled (CASME II and SAMM) subjects, a fifth of them held out
  (pretrain.val_fraction 0.2) to choose the per-AU thresholds. The recipe's five shared
  part models serve LOSO folds only; the all-data fold never uses them, so training them
  here would be wasted. This is the same stage 1 the LOSO run gives its exported model.
"""

from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config


def get_config() -> ml_collections.ConfigDict:
    c = load_config(Path(__file__).with_name("megc2019_composite_loso.py"))
    with c.unlocked():
        del c["config_file"]  # this file is the config, not the one it starts from
    c.protocol.kind = "all"
    c.pretrain.subject_folds = 0
    c.export.final_model = "all_data"
    return c
