"""Allow ``python -m edge_digits``."""

from edge_digits.cli import main

if __name__ == "__main__":
    main()
