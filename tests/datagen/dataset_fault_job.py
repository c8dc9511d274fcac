"""Run ``neuralops-datagen`` and SIGKILL this very process at a chosen point (fault injection).

usage: python dataset_fault_job.py PHASE K -- DATAGEN_ARGS...

PHASE is where the K-th event kills the process (``os.kill(getpid(), SIGKILL)``: no cleanup, no
flush, exactly what a crash or the OOM killer does):
  sampling    the K-th draw of a sample's random inputs (features, then the solve loop)
  solving     the K-th linear solve
  writing     the K-th atomic file write, after the temp file is complete, before its rename
  finalising  the K-th deletion of merged segments inside finalize (part of the data merged)
``none`` runs to the end. The writer flushes after every sample and finalize checkpoints after
every segment, so every phase has many points to hit.
"""

import os
import signal
import sys

import datagen.dataset as D
from datagen.elliptic import backends, darcy, family, heat, helmholtz, poisson  # noqa: F401 (subclasses)


def die_on(owner, name, k, when=lambda *a, **kw: True):
    real = getattr(owner, name)
    count = [0]

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def main():
    phase, k = sys.argv[1], int(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    real_init = D.DatasetWriter.__init__

    def init(self, *args, **kwargs):
        kwargs.update(flush_every=1, flush_seconds=0.0)
        real_init(self, *args, **kwargs)

    D.DatasetWriter.__init__ = init
    D.DatasetWriter.MERGE_BATCH_BYTES = 1
    if phase == "sampling":
        for cls in family.EllipticFamily.__subclasses__():
            die_on(cls, "sample", k)
    elif phase == "solving":
        die_on(backends.PetscBackend, "solve", k)
    elif phase == "writing":
        die_on(D, "_durable_replace", k)
    elif phase == "finalising":
        die_on(D, "_remove_files", k, when=lambda paths: any("seg-" in os.path.basename(p) for p in paths))
    elif phase != "none":
        raise SystemExit(f"unknown phase {phase!r}")
    from datagen.cli import main as cli

    sys.exit(cli(argv))


if __name__ == "__main__":
    main()
