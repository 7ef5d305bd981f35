"""Dataset layout, labels, synthesis, download and HDF5 packing."""
