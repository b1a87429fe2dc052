"""``python -m flowc`` behaves exactly like the ``flowc`` console script."""

from flowc.compiler.cli import main

if __name__ == "__main__":
    main()
