"""LLC workflow: build teacher-student targets, sample the localized tempered posterior
with SGLD and HMC, estimate the local learning coefficient, and compare it with theory.

``llc.sweep`` and ``llc.truth`` import neither JAX nor NumPy: the rules import them at
parse time, which every SLURM job repeats.
"""
