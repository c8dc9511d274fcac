"""Batched pseudo-spectral solver and dataset generator for 2D incompressible Navier-Stokes.

``spectral``: grid and spectral operators (shared with the Spectral-Refiner residual);
``forcing`` / ``initial``: forcing fields and initial conditions; ``steppers``: time schemes;
``solver``: the batched time integrator; ``recipes``: named generation recipes; ``generator``:
datasets through the data contract; ``cli``: ``neuralops-datagen navier-stokes``.
"""
