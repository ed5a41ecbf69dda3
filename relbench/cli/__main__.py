"""`python -m relbench.cli`: the `relbench` command, for launchers that take a module
(`torchrun --nproc_per_node 2 -m relbench.cli eval ...`)."""

from relbench.cli import app

if __name__ == "__main__":
    app(prog_name="relbench")
