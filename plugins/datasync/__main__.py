if __name__ == "__main__":
    from datasync.cli import main

    raise SystemExit(main())
