"""``python -m lfr.contracts generate``: the same command as ``lfr contracts generate``."""

from lfr.contracts.cli import contracts_app

if __name__ == "__main__":
    contracts_app(prog_name="lfr contracts")
