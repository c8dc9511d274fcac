"""datagen: PDE dataset generation (SKR on PETSc; batched pseudo-spectral Navier-Stokes) and
the HDF5 data contract (:mod:`datagen.dataset`)."""

__version__ = "0.1.0"
