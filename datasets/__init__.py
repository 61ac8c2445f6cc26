"""sciml.datasets: see docs/architecture.md."""
if __name__ != "sciml.datasets":  # imported as a top-level `datasets`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.datasets`, not a top-level `datasets` package. "
        "Import it as `sciml.datasets`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )
