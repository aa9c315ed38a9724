"""``python -m fedpsyau_jax.cli VERB ...`` (same as the ``fedpsyau`` script)."""

import sys

from fedpsyau_jax.cli.main import main

sys.exit(main())
