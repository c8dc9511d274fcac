"""Elliptic and parabolic PDE families solved with Sorting Krylov Recycling on PETSc.

- :mod:`.assembly`  finite-volume operators on the node grid of the unit box (2D/3D)
- :mod:`.family`    what a family provides (sample, operator, solve, sorting features)
- :mod:`.darcy`, :mod:`.helmholtz`, :mod:`.poisson`, :mod:`.heat`   the families (darcy3d/helmholtz3d: ``dim=3``)
- :mod:`.backends`  PETSc solvers behind one interface (skr = GCRO-DR, gmres, lu, cg-gamg)
- :mod:`.generator` sample -> sort -> solve in order -> store (MPI chunks, resume, fallback)
- :mod:`.cli`       ``neuralops-datagen <family> ...``
"""
