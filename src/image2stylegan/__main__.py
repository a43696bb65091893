"""`python -m image2stylegan ...` (also what `torchrun -m image2stylegan embed ...` runs)."""

from .cli.main import main

if __name__ == "__main__":
    main()
