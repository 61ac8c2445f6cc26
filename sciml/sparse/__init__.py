"""Shared sparse graph kernels: CSR adjacency, SpMM, segment reductions, softmax, gather/scatter, SDDMM."""
