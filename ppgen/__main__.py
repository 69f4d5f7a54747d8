"""``python -m ppgen`` (and ``torchrun --nproc-per-node N -m ppgen fit ...``): the ``ppgen``
command."""

from ppgen.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
