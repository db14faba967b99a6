"""`python -m freq` runs the command line."""

from freq.cli import main

if __name__ == "__main__":
    main()
