"""Federated learning for a site that never took part: two databases federate (one site
each), the third joins afterwards — first with the federation's model as it is, then
after labelling k of its own subjects (k = 1, 2, 4, 8) and fine-tuning what the
algorithm keeps personal.

    fedpsyau federate --config=configs/fl_megc2019_new_site.py --workdir=runs/fl_new_site_smic
    fedpsyau federate --config=configs/fl_megc2019_new_site.py --workdir=runs/fl_new_site_samm \
        --config.fl.new_site=samm                 # the other rotations: samm, casme2
    fedpsyau federate --config=configs/fl_megc2019_new_site.py --workdir=runs/fl_new_site_smic_flow \
        --config.model.use_au_branch=false        # flow-stream-only twin
    python experiments/fl_new_site/compare.py runs/fl_new_site_smic   # the table and the curve

Every setting is configs/fl_megc2019_recipe.py's (the centralised recipe as local training,
the AU branch that learns, 10 rounds × 2 local epochs, μ 0.01, θ 0.9), fixed before any
run, except:

- fl.new_site smic — the site kept out (SMIC: another camera, another population and no
  AU coding, the hardest of the three for models trained on the others).
- protocol.splits ("subject",) — each federating site keeps 30 % of its subjects unseen,
  on which its deployed model and AU heads are scored (as in LOSO, never its training
  people).
- protocol.seeds 0–2 — what the time budget allows for five algorithms.
- fl.adapt_k (1, 2, 4, 8), fl.adapt_repeats 3, fl.adapt_epochs 10 — fixed a priori: a
  few labelled people, three random choices of them per seed, ten epochs at the recipe's
  peak rate (constant); the new site is scored on its other subjects.
"""
from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config


def get_config() -> ml_collections.ConfigDict:
    c = load_config(Path(__file__).with_name("fl_megc2019_recipe.py"))
    with c.unlocked():
        del c["config_file"]  # this file is the config, not the one it starts from
    c.name = "fl_megc2019_new_site"
    c.fl.new_site = "smic"
    c.fl.adapt_k = (1, 2, 4, 8)
    c.fl.adapt_repeats = 3
    c.fl.adapt_epochs = 10
    c.fl.eval_every_round = False
    c.protocol.splits = ("subject",)
    c.protocol.seeds = (0, 1, 2)
    return c
