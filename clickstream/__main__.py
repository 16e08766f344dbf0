"""`python -m clickstream` and the `clickstream` console script."""

from clickstream.cli import main

if __name__ == "__main__":
    main()
