"""The `image2stylegan` command line: thin wrappers over the library (STYLE habit 5)."""
