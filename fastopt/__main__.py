"""Command line: ``python -m fastopt {demo,bench,config}``.

  demo     train a NumPy MLP on scikit-learn's digits with six optimizers:
           progress bar, table, PNG of the loss curves (needs fastopt[demo])
  bench    time one optimizer step on this machine against NumPy (and torch
           when installed): progress bar, table, optional PNG
  config   print the version, SIMD path and thread count

``python -m fastopt <command> --help`` lists a command's options.
"""
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as run
    elif command == "bench":
        from .bench import main as run
    elif command == "config":
        from . import show_config

        show_config()
        return 0
    else:
        print(f"unknown command {command!r}\n\n{__doc__.strip()}", file=sys.stderr)
        return 2
    try:
        return run(rest)
    except ImportError as e:  # a missing optional dependency: say which extra to install
        print(f"python -m fastopt {command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
