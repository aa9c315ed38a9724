"""The bottom layer: what every other part shares and nothing here computes with JAX.

- ``errors``         the one-line user errors (``UserError`` and its kinds)
- ``sample_arrays``  ``MESamples``, the arrays of a set of samples (NumPy)
- ``atomic_files``   writes that never leave a half-written file
- ``shared_data``    where the shared data folder is (``FEDPSYAU_SHARED_DATA``)
- ``keypoints``      the 65-point landmark scheme and its dlib-68 mapping
- ``au_groups``      the AUs the network predicts and their groups

Imports NumPy and the standard library only: a reader that raises an error does not
load JAX or Flax.
"""
