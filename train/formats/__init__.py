"""Importers and exporters for the data layouts users already hold (``neuralops-data import/export``).

- :mod:`.grid`            node conventions (nodes with walls, nodes without the far wall, cell centres)
- :mod:`.neuraloperator`  neuraloperator ``.pt`` files (``{'x': (N, s, s), 'y': (N, s, s)}``): Darcy, Navier-Stokes
- :mod:`.the_well`        The Well HDF5 layout: import, and export of a neuralops dataset
- :mod:`.pdebench`        PDEBench boundary conditions per file (the files do not store them)
- :mod:`.cli`             the ``neuralops-data import`` / ``export`` arguments (FNO ``.mat`` and PDEBench
                          come from :mod:`train.importers`)
"""
