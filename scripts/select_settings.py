"""Choose training settings on validation subjects carved from training data only
(``fedpsyau_jax.training.settings_selection``, where the options are described).

    python scripts/select_settings.py --config=configs/megc2019_composite_loso.py \
        --workdir=runs/select_megc --grid "train.learning_rate=3e-4,1e-3"
"""

import sys

from fedpsyau_jax.training.settings_selection import main

if __name__ == "__main__":
    sys.exit(main())
