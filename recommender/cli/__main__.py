"""`python -m recommender.cli`: the same command line as the `recommender` script."""

from . import main

main()
