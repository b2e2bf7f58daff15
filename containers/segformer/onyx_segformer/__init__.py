"""onyx segformer tool: SegFormer keep/exclude masks and Gaussian filtering by them."""

__version__ = "1"
