"""Run the agent with its scheduler: ``python main.py`` (stop with Ctrl+C)."""

from scheduler import main

if __name__ == "__main__":
    raise SystemExit(main())
