"""Run the agent with its scheduler: ``python main.py`` (stop with Ctrl+C)."""

from scheduler.app import main

if __name__ == "__main__":
    raise SystemExit(main())
