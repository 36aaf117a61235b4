"""`python -m reconcile`: the CLI. Guarded, because worker processes started with multiprocessing's
spawn (the API server's body decoders) import the main module again and must not run the CLI."""

from reconcile.cli.main import main

if __name__ == "__main__":
    main()
