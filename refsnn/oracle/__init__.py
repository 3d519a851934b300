"""The oracle: record spike traces in a documented HDF5 format and compare two of them."""
