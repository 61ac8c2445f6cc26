"""sciml.operators: see docs/architecture.md."""
if __name__ != "sciml.operators":  # imported as a top-level `operators`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.operators`, not a top-level `operators` package. "
        "Import it as `sciml.operators`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )
