"""`python -m clickstream` and the `clickstream` console script."""

from clickstream.cli.app import main

if __name__ == "__main__":
    main()
