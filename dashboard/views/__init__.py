"""Dashboard pages: each file is one page, with a single ``render()`` entry function."""
