from assay._zipapp import install

install()  # a no-op unless assay runs from assay.pyz (then: native modules on first import)

from assay.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
