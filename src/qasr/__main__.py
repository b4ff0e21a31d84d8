"""``python -m qasr`` is the ``qasr`` command."""

from qasr.cli.main import run

if __name__ == "__main__":
    run()
