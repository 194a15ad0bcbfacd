from treadle.cli import main

# Guarded: `treadle server --workers N` spawns processes that import this module again.
if __name__ == "__main__":
    main()
